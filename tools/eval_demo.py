"""Score the demo checkpoint from its pictures, through Kiln's ordinary nodes.

    python tools/eval_demo.py                                   # default workflow settings
    python tools/eval_demo.py --cfg 1 --count 216               # what guidance adds
    python tools/eval_demo.py --sweep --count 72                # compare settings

For each of a fixed, seeded set of prompts (``diffusion.demo.dataset.evaluation_scenes``: one
shape, plain background, canonical phrasing) it runs CheckpointLoaderSimple, CLIPTextEncode,
EmptyLatentImage, KSampler and VAEDecode exactly as a workflow would, then reads the picture back
with ``diffusion.demo.metrics``: colour (nearest named colour of the shape's pixels), position
(nearest of the nine nominal centres), size and shape (IoU against rendered templates). It reports
the accuracies and the seconds per image (text encoding, sampling and decoding of one image).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator


os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: no spinning threads on shared CPUs

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from diffusion.demo.dataset import IMAGE_SIZE, evaluation_scenes  # noqa: E402
from diffusion.demo.metrics import read_image, score_readings  # noqa: E402

CHECKPOINT_NAME = "kiln-demo.safetensors"
NODE_MODULES = ("nodes.loaders", "nodes.conditioning", "nodes.latent", "nodes.sampling", "nodes.vae")


@dataclass(frozen=True)
class SamplerSettings:
    """The KSampler widgets that the evaluation varies (the rest stay at their defaults)."""

    steps: int = 20
    cfg: float = 5.0
    sampler_name: str = "euler"
    scheduler: str = "normal"


DEFAULT_SETTINGS = SamplerSettings()


def node_classes() -> dict[str, type]:
    """Every built-in node class by name (the modules in ``nodes.BUILTIN_MODULES`` and the usual areas)."""
    import nodes

    names = list(getattr(nodes, "BUILTIN_MODULES", ())) + [m for m in NODE_MODULES]
    classes: dict[str, type] = {}
    for module_name in dict.fromkeys(names):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        classes.update(getattr(module, "NODE_CLASS_MAPPINGS", {}))
    return classes


def run_node(classes: dict[str, type], class_type: str, **inputs: Any) -> tuple:
    """Call a node the way the executor does: ``getattr(Class(), Class.FUNCTION)(**inputs)``."""
    node_class = classes[class_type]
    result = getattr(node_class(), node_class.FUNCTION)(**inputs)
    return result["result"] if isinstance(result, dict) else result


@contextmanager
def node_context(models_root: Path, cpu: bool, cpu_precision: str = "auto") -> Iterator[None]:
    """A node context with Kiln's folders (rooted at ``models_root``'s parent) and a device manager
    computing on the CPU in the server's precision (``auto``: bf16 where the CPU is fast at it)."""
    from diffusion.devices import DeviceManager, cpu_compute_dtype
    from engine.context import InterruptFlag, NodeContext, ProgressReporter, use_context
    from engine.folders import ModelFolders

    interrupt = InterruptFlag()
    folders = ModelFolders(models_root.parent, models_dir=models_root, wipe_temp=False)
    devices = DeviceManager(cpu=cpu, cpu_dtype=cpu_compute_dtype(cpu_precision))
    resources = {"folders": folders, "devices": devices, "options": {}}
    context = NodeContext("eval-demo", "1", "1", ProgressReporter(lambda *args: None, interrupt), interrupt, resources)
    with use_context(context):
        yield


class DemoWorkflow:
    """The default text-to-image workflow, held open so many prompts reuse the loaded models."""

    def __init__(self, checkpoint: str, image_size: int = IMAGE_SIZE) -> None:
        self.classes = node_classes()
        self.model, self.clip, self.vae = run_node(self.classes, "CheckpointLoaderSimple", ckpt_name=checkpoint)[:3]
        self.negative = run_node(self.classes, "CLIPTextEncode", clip=self.clip, text="")[0]
        self.latent = run_node(self.classes, "EmptyLatentImage", width=image_size, height=image_size, batch_size=1)[0]

    def generate(self, prompt: str, seed: int, settings: SamplerSettings) -> np.ndarray:
        """One picture, uint8 ``[H, W, 3]``."""
        positive = run_node(self.classes, "CLIPTextEncode", clip=self.clip, text=prompt)[0]
        samples = run_node(
            self.classes, "KSampler", model=self.model, seed=seed, steps=settings.steps, cfg=settings.cfg,
            sampler_name=settings.sampler_name, scheduler=settings.scheduler, positive=positive,
            negative=self.negative, latent_image=self.latent, denoise=1.0,
        )[0]
        image = run_node(self.classes, "VAEDecode", vae=self.vae, samples=samples)[0]
        return (image[0].clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def evaluate(workflow: DemoWorkflow, settings: SamplerSettings, count: int, seed: int) -> tuple[dict, list[np.ndarray]]:
    """Accuracies and seconds per image for the first ``count`` evaluation prompts."""
    scenes = evaluation_scenes(count)
    images, seconds = [], []
    for index, scene in enumerate(scenes):
        started = time.perf_counter()
        images.append(workflow.generate(scene.caption, seed + index, settings))
        seconds.append(time.perf_counter() - started)
    readings = [read_image(image) for image in images]
    expected = [(s.shapes[0].shape, s.shapes[0].colour, s.shapes[0].size, s.shapes[0].position) for s in scenes]
    scores = score_readings(readings, expected)
    scores["shape_by_kind"] = {
        kind: float(np.mean([r.shape == kind for r, e in zip(readings, expected) if e[0] == kind]))
        for kind in dict.fromkeys(e[0] for e in expected)
    }
    scores["seconds_per_image"] = float(np.mean(seconds))
    return {"settings": asdict(settings), "count": count, **scores}, images


def save_grid(images: list[np.ndarray], path: Path, columns: int = 12) -> None:
    """Write the pictures as one PNG, ``columns`` to a row."""
    from PIL import Image

    rows = (len(images) + columns - 1) // columns
    size = images[0].shape[0]
    grid = np.zeros((rows * size, columns * size, 3), dtype=np.uint8)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid[row * size : (row + 1) * size, column * size : (column + 1) * size] = image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)


def sweep_settings() -> list[SamplerSettings]:
    """The candidates for the default workflow."""
    candidates = [SamplerSettings(steps, cfg, "euler", "normal") for steps in (10, 20, 30) for cfg in (3.0, 5.0, 7.0, 9.0)]
    candidates += [SamplerSettings(20, cfg, sampler, scheduler) for cfg in (5.0, 7.0)
                   for sampler, scheduler in (("euler_ancestral", "normal"), ("dpmpp_2m", "karras"), ("ddim", "ddim_uniform"))]
    return candidates


def add_run_arguments(parser: argparse.ArgumentParser, cpu_flag: bool = True) -> None:
    """The options every demo evaluator shares: where the report goes and how torch runs."""
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    if cpu_flag:
        parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    parser.add_argument("--cpu-precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="CPU compute dtype, as the server's --cpu-bf16/--cpu-fp32 (default: the server's auto)")


def start_torch(args: argparse.Namespace) -> None:
    """Quiet progress bars and the requested thread count; torch is imported only now."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)


def write_report(results: Any, path: Path | None) -> None:
    """Save the results as indented JSON when ``--json`` asked for it."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=CHECKPOINT_NAME, help="name inside models/checkpoints")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--count", type=int, default=216)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=DEFAULT_SETTINGS.steps)
    parser.add_argument("--cfg", type=float, default=DEFAULT_SETTINGS.cfg)
    parser.add_argument("--sampler", default=DEFAULT_SETTINGS.sampler_name)
    parser.add_argument("--scheduler", default=DEFAULT_SETTINGS.scheduler)
    parser.add_argument("--no-cfg1", action="store_true", help="skip the comparison run at cfg = 1")
    parser.add_argument("--sweep", action="store_true", help="score every candidate setting")
    parser.add_argument("--grid", type=Path, default=None, help="save the pictures of the first run here")
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    start_torch(args)
    chosen = SamplerSettings(args.steps, args.cfg, args.sampler, args.scheduler)
    runs = sweep_settings() if args.sweep else [chosen]
    if not args.sweep and not args.no_cfg1 and chosen.cfg != 1.0:
        runs.append(SamplerSettings(chosen.steps, 1.0, chosen.sampler_name, chosen.scheduler))
    results = []
    with node_context(args.models_dir, args.cpu, args.cpu_precision):
        started = time.perf_counter()
        workflow = DemoWorkflow(args.checkpoint)
        print(f"loaded {args.checkpoint} in {time.perf_counter() - started:.2f} s", flush=True)
        for number, settings in enumerate(runs):
            result, images = evaluate(workflow, settings, args.count, args.seed)
            results.append(result)
            print(json.dumps(result), flush=True)
            if number == 0 and args.grid is not None:
                save_grid(images, args.grid)
    write_report(results, args.json)
    return results


if __name__ == "__main__":
    main()
