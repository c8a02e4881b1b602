"""Measure the demo LoRA through Kiln's ordinary nodes: does it add its colour, and keep the others?

    python tools/eval_demo_lora.py                                    # the shipped LoRA, default settings
    python tools/eval_demo_lora.py --lora /tmp/pink.safetensors --count 8 --base-count 8

The workflow is the default one of ``tools/eval_demo.py`` (CheckpointLoaderSimple, CLIPTextEncode,
EmptyLatentImage 64 x 64, KSampler steps 20 / cfg 5 / euler / normal, VAEDecode) with a
``LoraLoader`` (strength 1.0 on model and clip) between the checkpoint and everything that uses it,
as in the editor's LoRA template. Before measuring, it checks that the loader matched every
tensor of the file to a layer of the checkpoint (Kiln logs ``lora key not loaded: …`` for the
others); an unmatched key is an error.

Two measurements, each with and without the LoRA, on the same seeds:

* ``--count`` prompts ``"a large pink circle in the center on a blue background"``, ...
  (``diffusion.demo.lora_data.colour_prompts``): the share of pictures whose shape reads as the
  new colour (nearest of the base colours *and* the new one) and the mean RGB distance of the
  shape to it;
* ``--base-count`` of the base evaluation prompts (``diffusion.demo.dataset.evaluation_scenes``):
  colour, position, size and shape accuracy as ``tools/eval_demo.py`` scores them, and the share
  of pictures read as the new colour (which should stay zero).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from diffusion.demo.dataset import evaluation_scenes  # noqa: E402
from diffusion.demo.lora_data import colour_distance, colour_prompts, read_colour  # noqa: E402
from diffusion.demo.metrics import read_image, score_readings  # noqa: E402
from tools.eval_demo import (  # noqa: E402
    DEFAULT_SETTINGS, DemoWorkflow, SamplerSettings, add_run_arguments, node_context, save_grid, start_torch, write_report,
)

DEFAULT_LORA = ROOT / "models" / "loras" / "kiln-demo-pink.safetensors"
DEFAULT_CHECKPOINT = ROOT / "models" / "checkpoints" / "kiln-demo.safetensors"
LORA_LOGGER = "diffusion.lora.apply"


class UnmatchedLoraKeys(RuntimeError):
    """The loader left tensors of the LoRA file unapplied."""


@dataclass
class LoraApplication:
    """What ``LoraLoader`` did with a file: adapters in it, weight patches added, names left out."""

    adapters: int
    model_patches: int
    clip_patches: int
    unmatched: list[str] = field(default_factory=list)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _patch_count(value: Any) -> int:
    return sum(len(entries) for entries in value.patches.values())


def apply_lora(workflow: DemoWorkflow, lora_name: str, strength_model: float = 1.0,
               strength_clip: float = 1.0) -> tuple[DemoWorkflow, LoraApplication]:
    """A copy of ``workflow`` whose MODEL and CLIP went through ``LoraLoader`` (and whose empty
    negative prompt is encoded by the LoRA's CLIP, as in a workflow), and what the loader applied.

    The loader's warnings ``lora key not loaded: <name>`` are collected into ``unmatched``.
    """
    loader = workflow.classes["LoraLoader"]()
    collect = _Collect()
    logger = logging.getLogger(LORA_LOGGER)
    logger.addHandler(collect)
    try:
        model, clip = loader.load_lora(workflow.model, workflow.clip, lora_name, strength_model, strength_clip)
    finally:
        logger.removeHandler(collect)
    parsed = loader.parsed_lora(lora_name)
    prefix = "lora key not loaded: "
    application = LoraApplication(
        adapters=len(parsed.adapters) + len(parsed.bias_adapters),
        model_patches=_patch_count(model) - _patch_count(workflow.model),
        clip_patches=_patch_count(clip) - _patch_count(workflow.clip),
        unmatched=[message[len(prefix):] for message in collect.messages if message.startswith(prefix)],
    )
    adapted = copy.copy(workflow)
    adapted.model, adapted.clip = model, clip
    encode = workflow.classes["CLIPTextEncode"]
    adapted.negative = getattr(encode(), encode.FUNCTION)(clip=clip, text="")[0]
    return adapted, application


def register_files(lora: Path, checkpoint: Path) -> tuple[str, str]:
    """Make the LoRA's and the checkpoint's folders model folders of the running context (first in
    line) and return the two file names as a workflow's loaders would name them."""
    from engine.context import current_context

    folders = current_context().resources["folders"]
    folders.add_path("loras", lora.resolve().parent, first=True)
    folders.add_path("checkpoints", checkpoint.resolve().parent, first=True)
    return lora.name, checkpoint.name


def measure_colour(base: DemoWorkflow, adapted: DemoWorkflow, count: int, seed: int, colour: str,
                   settings: SamplerSettings) -> tuple[dict, list[np.ndarray]]:
    """The ``count`` colour prompts with and without the LoRA; pictures: without, then with."""
    prompts = colour_prompts(count, colour)
    result: dict = {"count": count, "prompts": [prompt for prompt, _, _ in prompts]}
    pictures = []
    for name, workflow in (("without", base), ("with", adapted)):
        images = [workflow.generate(prompt, seed + index, settings) for index, (prompt, _, _) in enumerate(prompts)]
        readings = [read_image(image) for image in images]
        pictures += images
        result[name] = {
            "colour": float(np.mean([read_colour(image) == colour for image in images])),
            "colours_read": [read_colour(image) for image in images],
            "mean_distance": float(np.mean([colour_distance(image, colour) for image in images])),
            "position": float(np.mean([r.position == label.position for r, (_, label, _) in zip(readings, prompts)])),
            "size": float(np.mean([r.size == label.size for r, (_, label, _) in zip(readings, prompts)])),
        }
    return result, pictures


def measure_base(base: DemoWorkflow, adapted: DemoWorkflow, count: int, seed: int, colour: str,
                 settings: SamplerSettings) -> tuple[dict, list[np.ndarray]]:
    """The first ``count`` base evaluation prompts with and without the LoRA."""
    scenes = evaluation_scenes(count)
    expected = [(s.shapes[0].shape, s.shapes[0].colour, s.shapes[0].size, s.shapes[0].position) for s in scenes]
    result: dict = {"count": count}
    pictures = []
    for name, workflow in (("without", base), ("with", adapted)):
        images = [workflow.generate(scene.caption, seed + index, settings) for index, scene in enumerate(scenes)]
        pictures += images
        scores = score_readings([read_image(image) for image in images], expected)
        scores[f"read_as_{colour}"] = float(np.mean([read_colour(image) == colour for image in images]))
        result[name] = scores
    return result, pictures


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lora", type=Path, default=DEFAULT_LORA, help="LoRA file (its folder becomes a loras folder)")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="demo checkpoint file")
    parser.add_argument("--colour", default="pink", help="the colour the LoRA teaches")
    parser.add_argument("--count", type=int, default=24, help="prompts in the new colour")
    parser.add_argument("--base-count", type=int, default=24, help="base evaluation prompts")
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--strength", type=float, default=1.0, help="strength_model and strength_clip")
    parser.add_argument("--grid", type=Path, default=None, help="save the pictures here (rows: without, with)")
    add_run_arguments(parser, cpu_flag=False)
    args = parser.parse_args(argv)
    start_torch(args)
    started = time.perf_counter()
    with node_context(ROOT / "models", cpu=True, cpu_precision=args.cpu_precision):
        lora_name, checkpoint_name = register_files(args.lora, args.checkpoint)
        base = DemoWorkflow(checkpoint_name)
        adapted, application = apply_lora(base, lora_name, args.strength, args.strength)
        if application.unmatched:
            raise UnmatchedLoraKeys(f"{len(application.unmatched)} LoRA keys not loaded: {application.unmatched[:5]}")
        result: dict = {"lora": str(args.lora), "checkpoint": str(args.checkpoint), "strength": args.strength,
                        "settings": asdict(DEFAULT_SETTINGS), "application": application.__dict__}
        print(json.dumps({"application": application.__dict__}), flush=True)
        result["colour_prompts"], colour_pictures = measure_colour(base, adapted, args.count, args.seed, args.colour,
                                                                   DEFAULT_SETTINGS)
        print(json.dumps({"colour_prompts": result["colour_prompts"]}), flush=True)
        result["base_prompts"], base_pictures = measure_base(base, adapted, args.base_count, args.seed, args.colour,
                                                             DEFAULT_SETTINGS)
        print(json.dumps({"base_prompts": result["base_prompts"]}), flush=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    if args.grid is not None:
        columns = max(args.count, args.base_count, 1)
        rows = [colour_pictures[: args.count], colour_pictures[args.count :],
                base_pictures[: args.base_count], base_pictures[args.base_count :]]
        blank = np.zeros_like(colour_pictures[0])
        save_grid([image for row in rows for image in row + [blank] * (columns - len(row))], args.grid, columns)
    write_report(result, args.json)
    print(f"measured in {result['seconds']} s", flush=True)
    return result


if __name__ == "__main__":
    main()
