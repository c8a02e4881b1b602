"""Score the demo checkpoint at editing and control, through Kiln's ordinary nodes.

    python tools/eval_demo_control.py                        # every block, 54 cases each
    python tools/eval_demo_control.py --blocks inpaint area --count 12
    python tools/eval_demo_control.py --controlnet my-edges.safetensors
    python tools/eval_demo_control.py --blocks controlnet --hint silhouette   # kiln-demo-silhouette

Four blocks, each on the first ``--count`` evaluation scenes (``diffusion.demo.dataset``) at the
default workflow settings (KSampler steps 20, cfg 5, euler, normal; seeds ``--seed`` + index), and
each read back from the pixels with ``diffusion.demo.metrics`` / ``diffusion.demo.editing``:

* ``inpaint``: the scene is the input image, the mask its shape's bounding box grown by 3 px, the
  prompt the scene's caption with another shape and colour. Two variants, as a ComfyUI user builds
  them: VAEEncode → SetLatentNoiseMask → KSampler (denoise ``--noise-mask-denoise``) and
  VAEEncodeForInpaint (grow_mask_by 6) → KSampler (denoise 1); then VAEDecode, and
  ImageCompositeMasked(destination = input, source = decoded, mask) to keep the unmasked pixels.
  Reports PSNR outside the mask of the raw decode and of the composite (and of a plain VAE round
  trip, the most a raw decode can keep), the share of cases whose picture (whole, and cropped to
  the mask's box) reads as the new colour (and shape), and the mean change inside the mask.
* ``outpaint``: ImagePadForOutpaint (32 px on one side, cycling left/top/right/bottom, feathering
  40) → VAEEncodeForInpaint → KSampler → VAEDecode, prompted with the scene's caption. Reports PSNR
  of the original area (all of it, the part beyond the 6 px the grown mask reaches into it, and a
  VAE round trip's), the mean RGB distance of the padding from the grey fill (scenes whose
  background is not grey) and the share whose padding reads as the scene's background colour.
* ``area``: an empty latent of 128 x 64 (and 64 x 128): two prompts (a large shape in a colour on a
  white background) set by ConditioningSetArea to the left and right halves (top and bottom),
  combined by ConditioningCombine with a base prompt over the whole picture: empty (all cases) and
  background-only (a third of them, for comparison). Reports the share of halves that read as
  their prompt's colour (and shape).
* ``controlnet``: ControlNetLoader ``--controlnet``, hint = Canny(0.4, 0.8) of the rendered scene
  (``--hint edges``) or the scene's shapes filled white on black (``--hint silhouette``, the picture a
  LoadImage of a painted silhouette gives), ControlNetApplyAdvanced (strength 1 and 0, start 0, end
  1), prompted with the layout-free prompt ("a red star on a blue background": only the hint says
  where) and with the full caption; reports the IoU of the picture's foreground with the scene's
  true shape, and the share of pictures whose shape reads as the prompt's colour (the hint says
  where, the prompt still says what). Skipped, with a message, when the file is not in
  ``models/controlnet``.

Prints one JSON object per block, and all of them together at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

# As server.py: idle OpenMP threads sleep instead of spinning (set before torch loads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parent.parent
for entry in (ROOT, ROOT / "tools"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from diffusion.demo.captions import layout_free_caption  # noqa: E402
from diffusion.demo.dataset import Scene, evaluation_scenes, render, render_silhouette  # noqa: E402
from diffusion.demo.editing import (  # noqa: E402
    background_name, box_mask, halves, mean_change, psnr, read_region, replacement, replacement_caption, shape_iou,
)
from diffusion.demo.metrics import read_image  # noqa: E402
from tools.eval_demo import (  # noqa: E402
    CHECKPOINT_NAME, DEFAULT_SETTINGS, DemoWorkflow, SamplerSettings, add_run_arguments, node_context, run_node,
    start_torch, write_report,
)
from tools.train_demo_controlnet import CANNY_HIGH, CANNY_LOW, HINTS  # noqa: E402

BLOCKS = ("inpaint", "outpaint", "area", "controlnet")
GROW_MASK_BY = 6            # VAEEncodeForInpaint's default
OUTPAINT_PAD = 32
OUTPAINT_FEATHERING = 40    # ImagePadForOutpaint's default
# Two-region prompts: (colour, shape) on the first side, (colour, shape) on the second.
AREA_PAIRS = (
    (("red", "circle"), ("blue", "square")), (("yellow", "star"), ("green", "circle")),
    (("blue", "ring"), ("orange", "triangle")), (("purple", "square"), ("yellow", "circle")),
    (("green", "cross"), ("red", "ring")), (("orange", "circle"), ("purple", "star")),
    (("black", "circle"), ("yellow", "square")), (("white", "triangle"), ("green", "star")),
    (("blue", "circle"), ("red", "star")),
)
AREA_BACKGROUND = "white"
# Base prompts over the whole picture: none (the regions' own text carries the background) and a
# background-only phrase.
AREA_BASE_PROMPTS = ("", f"a {AREA_BACKGROUND} background")


def region_prompt(colour: str, shape: str) -> str:
    return f"a large {colour} {shape} in the center on a {AREA_BACKGROUND} background"


def to_image(pixels: np.ndarray) -> Any:
    """uint8 ``[H, W, 3]`` -> IMAGE ``[1, H, W, 3]`` float in 0..1."""
    import torch

    return torch.from_numpy(pixels).float().div(255.0).unsqueeze(0)


def to_uint8(image: Any) -> np.ndarray:
    return (image[0].clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)


class EditingWorkflow(DemoWorkflow):
    """The demo workflow held open, with the nodes of editing and control around its KSampler."""

    def node(self, class_type: str, **inputs: Any) -> tuple:
        return run_node(self.classes, class_type, **inputs)

    def encode_text(self, text: str) -> list:
        return self.node("CLIPTextEncode", clip=self.clip, text=text)[0]

    def sample(self, positive: list, latent: dict, seed: int, settings: SamplerSettings, denoise: float = 1.0,
               negative: list | None = None) -> Any:
        """KSampler then VAEDecode: IMAGE ``[1, H, W, 3]``."""
        samples = self.node(
            "KSampler", model=self.model, seed=seed, steps=settings.steps, cfg=settings.cfg,
            sampler_name=settings.sampler_name, scheduler=settings.scheduler, positive=positive,
            negative=self.negative if negative is None else negative, latent_image=latent, denoise=denoise,
        )[0]
        return self.node("VAEDecode", vae=self.vae, samples=samples)[0]

    def inpaint(self, pixels: np.ndarray, mask: np.ndarray, prompt: str, seed: int, settings: SamplerSettings,
                variant: str, denoise: float) -> tuple[np.ndarray, np.ndarray]:
        """(raw decode, composite with the input through the mask), both uint8 ``[H, W, 3]``."""
        import torch

        image, mask_tensor = to_image(pixels), torch.from_numpy(mask).unsqueeze(0)
        if variant == "noise_mask":
            latent = self.node("VAEEncode", pixels=image, vae=self.vae)[0]
            latent = self.node("SetLatentNoiseMask", samples=latent, mask=mask_tensor)[0]
        else:
            latent = self.node("VAEEncodeForInpaint", pixels=image, vae=self.vae, mask=mask_tensor,
                               grow_mask_by=GROW_MASK_BY)[0]
        decoded = self.sample(self.encode_text(prompt), latent, seed, settings, denoise)
        composite = self.node("ImageCompositeMasked", destination=image, source=decoded, x=0, y=0,
                              resize_source=False, mask=mask_tensor)[0]
        return to_uint8(decoded), to_uint8(composite)

    def round_trip(self, pixels: np.ndarray) -> np.ndarray:
        """VAEEncode then VAEDecode: the most a raw decode can keep of the input."""
        latent = self.node("VAEEncode", pixels=to_image(pixels), vae=self.vae)[0]
        return to_uint8(self.node("VAEDecode", vae=self.vae, samples=latent)[0])

    def outpaint(self, pixels: np.ndarray, pad: dict[str, int], prompt: str, seed: int,
                 settings: SamplerSettings) -> tuple[np.ndarray, np.ndarray]:
        """(decoded picture, the outpainting mask) for the padded input."""
        padded, mask = self.node("ImagePadForOutpaint", image=to_image(pixels), feathering=OUTPAINT_FEATHERING, **pad)
        latent = self.node("VAEEncodeForInpaint", pixels=padded, vae=self.vae, mask=mask, grow_mask_by=GROW_MASK_BY)[0]
        return to_uint8(self.sample(self.encode_text(prompt), latent, seed, settings)), mask[0].numpy()

    def two_regions(self, first: str, second: str, base: str, split: str, seed: int,
                    settings: SamplerSettings) -> np.ndarray:
        """``first`` on the left (top) half, ``second`` on the right (bottom) of a 128 x 64 (64 x 128) picture."""
        width, height = (128, 64) if split == "left-right" else (64, 128)
        second_x, second_y = (64, 0) if split == "left-right" else (0, 64)
        areas = [
            self.node("ConditioningSetArea", conditioning=self.encode_text(text), width=64, height=64, x=x, y=y,
                      strength=1.0)[0]
            for text, x, y in ((first, 0, 0), (second, second_x, second_y))
        ]
        positive = self.node("ConditioningCombine", conditioning_1=areas[0], conditioning_2=areas[1])[0]
        positive = self.node("ConditioningCombine", conditioning_1=positive, conditioning_2=self.encode_text(base))[0]
        latent = self.node("EmptyLatentImage", width=width, height=height, batch_size=1)[0]
        return to_uint8(self.sample(positive, latent, seed, settings))

    def hint(self, kind: str, scene: Scene) -> Any:
        """The ControlNet's hint IMAGE for a scene: the Canny node's edges of its picture, or its silhouette."""
        if kind == "silhouette":
            return to_image(render_silhouette(scene))
        return self.node("Canny", image=to_image(render(scene)), low_threshold=CANNY_LOW, high_threshold=CANNY_HIGH)[0]

    def controlled(self, control_net: Any, hint: Any, prompt: str, strength: float, seed: int,
                   settings: SamplerSettings) -> np.ndarray:
        """A 64 x 64 picture drawn with the ControlNet fed the hint IMAGE ``hint``."""
        positive, negative = self.node(
            "ControlNetApplyAdvanced", positive=self.encode_text(prompt), negative=self.negative,
            control_net=control_net, image=hint, strength=strength, start_percent=0.0, end_percent=1.0,
            vae=self.vae,
        )
        return to_uint8(self.sample(positive, self.latent, seed, settings, negative=negative))


def _timed(run: Callable[[], Any], seconds: list[float]) -> Any:
    started = time.perf_counter()
    result = run()
    seconds.append(time.perf_counter() - started)
    return result


def _mean(values: list) -> float | None:
    return float(np.mean(values)) if values else None


def evaluate_inpaint(workflow: EditingWorkflow, scenes: list[Scene], seed: int, settings: SamplerSettings,
                     noise_mask_denoise: float = 1.0) -> dict:
    """Replace each scene's shape by another shape and colour inside its box mask (both variants)."""
    round_trip = [psnr(workflow.round_trip(render(scene)), render(scene), box_mask(scene.shapes[0]) < 0.5)
                  for scene in scenes]
    variants = {}
    for variant, denoise in (("noise_mask", noise_mask_denoise), ("encode_for_inpaint", 1.0)):
        figures: dict[str, list] = {key: [] for key in (
            "psnr_outside_raw", "psnr_outside_composite", "new_colour_whole", "new_colour_in_mask",
            "new_shape_whole", "old_colour_gone", "change_inside")}
        seconds: list[float] = []
        for index, scene in enumerate(scenes):
            pixels, mask = render(scene), box_mask(scene.shapes[0])
            shape, colour = replacement(scene, index)
            raw, composite = _timed(lambda: workflow.inpaint(
                pixels, mask, replacement_caption(scene, shape, colour), seed + index, settings, variant, denoise),
                seconds)
            outside, inside = mask < 0.5, mask >= 0.5
            whole, region = read_image(composite), read_region(composite, mask)
            figures["psnr_outside_raw"].append(psnr(raw, pixels, outside))
            figures["psnr_outside_composite"].append(psnr(composite, pixels, outside))
            figures["new_colour_whole"].append(whole.colour == colour)
            figures["new_colour_in_mask"].append(region.colour == colour)
            figures["new_shape_whole"].append(whole.shape == shape)
            figures["old_colour_gone"].append(region.colour != scene.shapes[0].colour)
            figures["change_inside"].append(mean_change(composite, pixels, inside))
        variants[variant] = {
            "denoise": denoise, **{key: _mean(values) for key, values in figures.items()},
            "psnr_outside_raw_min": float(np.min(figures["psnr_outside_raw"])),
            "share_psnr_outside_raw_at_least_30": _mean([v >= 30.0 for v in figures["psnr_outside_raw"]]),
            "seconds_per_image": _mean(seconds),
        }
    return {"block": "inpaint", "count": len(scenes), "mask": "shape's bounding box grown by 3 px",
            "composite": "ImageCompositeMasked(destination=input, source=decoded, mask): what a ComfyUI user adds "
                         "with a non-inpainting checkpoint so the unmasked pixels stay exact",
            "readings": "new_colour_whole reads the composite, new_colour_in_mask its crop to the mask's box",
            "psnr_outside_vae_round_trip": _mean(round_trip), **variants}


def beyond_grown_mask(mask: np.ndarray, grow: int) -> np.ndarray:
    """Boolean ``[H, W]``: pixels further than ``grow`` (square neighbourhood) from any masked pixel."""
    masked = mask > 0
    grown = masked.copy()
    height, width = masked.shape
    for dy in range(-grow, grow + 1):
        for dx in range(-grow, grow + 1):
            shifted = np.zeros_like(masked)
            shifted[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = \
                masked[max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)]
            grown |= shifted
    return ~grown


def evaluate_outpaint(workflow: EditingWorkflow, scenes: list[Scene], seed: int, settings: SamplerSettings) -> dict:
    """Pad each scene by 32 px on one side (cycling) and fill the padding."""
    figures: dict[str, list] = {key: [] for key in ("psnr_original_area", "psnr_original_beyond_grown_mask",
                                                    "psnr_original_vae_round_trip",
                                                    "pad_distance_from_grey", "pad_continues_background",
                                                    "pad_not_grey")}
    seconds: list[float] = []
    grey = np.array([127.5, 127.5, 127.5], dtype=np.float32)
    for index, scene in enumerate(scenes):
        pixels = render(scene)
        side = ("left", "top", "right", "bottom")[index % 4]
        pad = {"left": 0, "top": 0, "right": 0, "bottom": 0, side: OUTPAINT_PAD}
        picture, mask = _timed(lambda: workflow.outpaint(pixels, pad, scene.caption, seed + index, settings), seconds)
        top, left, size = pad["top"], pad["left"], scene.image_size
        original = picture[top : top + size, left : left + size]
        untouched = beyond_grown_mask(mask, GROW_MASK_BY)[top : top + size, left : left + size]
        padding = np.ones(picture.shape[:2], dtype=bool)
        padding[top : top + size, left : left + size] = False
        padded_pixels = picture[padding].astype(np.float32)
        figures["psnr_original_area"].append(psnr(original, pixels))
        figures["psnr_original_beyond_grown_mask"].append(psnr(original, pixels, untouched))
        figures["psnr_original_vae_round_trip"].append(psnr(workflow.round_trip(pixels), pixels))
        figures["pad_continues_background"].append(background_name(padded_pixels) == scene.background[0])
        if scene.background[0] != "gray":  # the grey fill is the right answer on a grey background
            distance = float(np.linalg.norm(padded_pixels - grey, axis=1).mean())
            figures["pad_distance_from_grey"].append(distance)
            figures["pad_not_grey"].append(background_name(padded_pixels) != "gray")
    return {"block": "outpaint", "count": len(scenes), "pad_px": OUTPAINT_PAD, "feathering": OUTPAINT_FEATHERING,
            "sides": "left, top, right, bottom in turn",
            "notes": "ImagePadForOutpaint feathers only when 2 x feathering < the image side (as ComfyUI), so at "
                     "64 px the mask is the padding alone; VAEEncodeForInpaint grows it by 6 px into the original. "
                     "psnr_original_beyond_grown_mask: the original pixels outside that grown mask. "
                     "pad_distance_from_grey and pad_not_grey: scenes whose background is not gray",
            **{key: _mean(values) for key, values in figures.items()},
            "count_not_gray_background": len(figures["pad_not_grey"]), "seconds_per_image": _mean(seconds)}


def evaluate_area(workflow: EditingWorkflow, count: int, seed: int, settings: SamplerSettings) -> dict:
    """Two regional prompts per picture; does each half read as its prompt's colour (and shape)?"""
    splits = ("left-right", "top-bottom")
    results = {}
    for base, cases in zip(AREA_BASE_PROMPTS, (count, max(2, count // 3))):
        colour_hits, shape_hits, both_hits, seconds = [], [], [], []
        by_split: dict[str, list] = {split: [] for split in splits}
        for index in range(cases):
            (colour_1, shape_1), (colour_2, shape_2) = AREA_PAIRS[(index // 2) % len(AREA_PAIRS)]
            split = splits[index % 2]
            picture = _timed(lambda: workflow.two_regions(region_prompt(colour_1, shape_1),
                                                          region_prompt(colour_2, shape_2), base, split,
                                                          seed + index, settings), seconds)
            readings = [read_image(half) for half in halves(picture, split)]
            hits = [readings[0].colour == colour_1, readings[1].colour == colour_2]
            colour_hits += hits
            both_hits.append(all(hits))
            by_split[split] += hits
            shape_hits += [readings[0].shape == shape_1, readings[1].shape == shape_2]
        results[f"base {base!r}"] = {
            "count": cases, "region_colour": _mean(colour_hits), "both_regions_colour": _mean(both_hits),
            "region_shape": _mean(shape_hits), **{f"region_colour_{split}": _mean(v) for split, v in by_split.items()},
            "seconds_per_image": _mean(seconds),
        }
    return {"block": "area", "count": count, "sizes": "128x64 (left-right) and 64x128 (top-bottom) in turn, each pair of AREA_PAIRS once in each",
            "regions": "ConditioningSetArea 64x64 at x/y 0 and 64, strength 1; ConditioningCombine with the base",
            **results}


def evaluate_controlnet(workflow: EditingWorkflow, scenes: list[Scene], seed: int, settings: SamplerSettings,
                        name: str, controlnet_dir: Path, hint_kind: str) -> dict:
    """IoU of the drawn shape with the scene's shape, the hint being the scene's Canny edges or silhouette."""
    if not (controlnet_dir / name).is_file():
        message = f"skipped: {name} is not in {controlnet_dir} (train it with tools/train_demo_controlnet.py)"
        print(message, file=sys.stderr, flush=True)
        return {"block": "controlnet", "skipped": message}
    control_net = workflow.node("ControlNetLoader", control_net_name=name)[0]
    results = {}
    prompts = {"layout-free prompt": lambda scene: layout_free_caption(
                   [(label.shape, label.colour) for label in scene.shapes], scene.background),
               "full caption": lambda scene: scene.caption}
    for prompt_kind, prompt_of in prompts.items():
        for strength in (1.0, 0.0):
            ious, colour_hits, seconds = [], [], []
            for index, scene in enumerate(scenes):
                picture = _timed(lambda: workflow.controlled(  # the hint's making is timed too, as in a workflow
                    control_net, workflow.hint(hint_kind, scene), prompt_of(scene), strength, seed + index, settings),
                    seconds)
                ious.append(shape_iou(picture, scene.shapes[0], scene.image_size))
                colour_hits.append(read_image(picture).colour == scene.shapes[0].colour)
            results[f"{prompt_kind}, strength {strength:g}"] = {
                "iou": _mean(ious), "iou_at_least_0.5": _mean([v >= 0.5 for v in ious]),
                "colour": _mean(colour_hits), "seconds_per_image": _mean(seconds)}
    return {"block": "controlnet", "count": len(scenes), "controlnet": name,
            "hint": HINTS[hint_kind],
            "prompts": "layout-free ('a red star on a blue background': the hint alone says where) and the full caption",
            **results}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=CHECKPOINT_NAME, help="name inside models/checkpoints")
    parser.add_argument("--hint", choices=list(HINTS), default="edges", help="what the ControlNet is fed")
    parser.add_argument("--controlnet", default=None,
                        help="name inside models/controlnet (default: kiln-demo-<hint>.safetensors)")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "models")
    parser.add_argument("--blocks", nargs="+", choices=BLOCKS, default=list(BLOCKS))
    parser.add_argument("--count", type=int, default=54, help="cases per block")
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--noise-mask-denoise", type=float, default=1.0, help="KSampler denoise of the noise-mask variant")
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    if args.controlnet is None:
        args.controlnet = f"kiln-demo-{args.hint}.safetensors"
    start_torch(args)
    settings = DEFAULT_SETTINGS
    scenes = evaluation_scenes(args.count)
    results: dict[str, Any] = {"settings": asdict(settings), "checkpoint": args.checkpoint, "seed": args.seed}
    with node_context(args.models_dir, args.cpu, args.cpu_precision):
        started = time.perf_counter()
        workflow = EditingWorkflow(args.checkpoint)
        print(f"loaded {args.checkpoint} in {time.perf_counter() - started:.2f} s", file=sys.stderr, flush=True)
        runs = {
            "inpaint": lambda: evaluate_inpaint(workflow, scenes, args.seed, settings, args.noise_mask_denoise),
            "outpaint": lambda: evaluate_outpaint(workflow, scenes, args.seed, settings),
            "area": lambda: evaluate_area(workflow, args.count, args.seed, settings),
            "controlnet": lambda: evaluate_controlnet(workflow, scenes, args.seed, settings, args.controlnet,
                                                      args.models_dir / "controlnet", args.hint),
        }
        for block in args.blocks:
            results[block] = runs[block]()
            print(json.dumps(results[block]), flush=True)
    print(json.dumps(results, indent=2), flush=True)
    write_report(results, args.json)
    return results


if __name__ == "__main__":
    main()
