"""Measuring edits of demo pictures: masks, PSNR outside a mask, readings of a region, shape IoU.

``tools/eval_demo_control.py`` and the tests use these to score inpainting, outpainting, area
composition and the ControlNet from pixels. Also here: the example input pictures that the editor's
inpainting, outpainting and ControlNet templates load from ``input/``, drawn by ``render``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from .captions import canonical_caption
from .dataset import (
    BACKGROUND_COLOURS, COLOURS, IMAGE_SIZE, SHAPES, SIZE_FRACTIONS, Scene, ShapeLabel, nominal_center, render,
    render_mask, render_silhouette,
)
from .metrics import Reading, foreground_mask, read_image

# PSNR of identical pictures is infinite; JSON has no infinity, so figures stop here.
PSNR_CAP_DB = 100.0
# Pixels added on every side of a shape's bounding box to make the inpainting mask.
MASK_GROWTH = 3


def box_mask(label: ShapeLabel, grow: int = MASK_GROWTH, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """float32 ``[H, W]`` mask (1 = masked) of the shape's bounding box grown by ``grow`` pixels."""
    half = label.side / 2 + grow
    cx, cy = label.center
    x0, x1 = max(0, math.floor(cx - half)), min(image_size, math.ceil(cx + half))
    y0, y1 = max(0, math.floor(cy - half)), min(image_size, math.ceil(cy + half))
    mask = np.zeros((image_size, image_size), dtype=np.float32)
    mask[y0:y1, x0:x1] = 1.0
    return mask


def psnr(first: np.ndarray, second: np.ndarray, where: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 pictures, over the pixels ``where`` is true.

    ``10 log10(255² / MSE)``, capped at ``PSNR_CAP_DB`` (identical pixels).
    """
    difference = first.astype(np.float64) - second.astype(np.float64)
    if where is not None:
        difference = difference[where.astype(bool)]
    mse = float(np.mean(difference**2)) if difference.size else 0.0
    if mse <= 255.0**2 * 10 ** (-PSNR_CAP_DB / 10):
        return PSNR_CAP_DB
    return float(10 * np.log10(255.0**2 / mse))


def mean_change(first: np.ndarray, second: np.ndarray, where: np.ndarray) -> float:
    """Mean absolute difference (0..255, over pixels and channels) where ``where`` is true."""
    difference = np.abs(first.astype(np.float32) - second.astype(np.float32))
    return float(difference[where.astype(bool)].mean())


def read_region(image: np.ndarray, mask: np.ndarray) -> Reading:
    """Read the picture cropped to the bounding box of ``mask`` (its border then is background)."""
    rows, columns = np.nonzero(mask > 0.5)
    crop = image[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    return read_image(np.ascontiguousarray(crop))


def halves(image: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The two halves of a picture, ``split`` = ``"left-right"`` or ``"top-bottom"``, each contiguous."""
    if split == "left-right":
        middle = image.shape[1] // 2
        return np.ascontiguousarray(image[:, :middle]), np.ascontiguousarray(image[:, middle:])
    middle = image.shape[0] // 2
    return np.ascontiguousarray(image[:middle]), np.ascontiguousarray(image[middle:])


def shape_iou(image: np.ndarray, label: ShapeLabel, image_size: int = IMAGE_SIZE) -> float:
    """IoU of the picture's foreground (``foreground_mask``) with the label's shape (coverage ≥ 0.5)."""
    truth = render_mask(label.shape, label.center, label.side, image_size) >= 0.5
    found = foreground_mask(image)
    union = (truth | found).sum()
    return float((truth & found).sum() / union) if union else 0.0


def replacement(scene: Scene, index: int) -> tuple[str, str]:
    """A (shape, colour) for inpainting scene number ``index``: both differ from the scene's shape and
    colour, and the colour from its background; cycled so every kind and colour is asked for."""
    label = scene.shapes[0]
    shapes = [s for s in SHAPES if s != label.shape]
    colours = [c for c in COLOURS if c != label.colour and c not in scene.background]
    return shapes[index % len(shapes)], colours[(index * 5 + 3) % len(colours)]


def replacement_caption(scene: Scene, shape: str, colour: str) -> str:
    """The scene's canonical caption with its shape and colour swapped for ``shape`` and ``colour``."""
    label = scene.shapes[0]
    return canonical_caption(shape, colour, label.size, label.position, scene.background)


def background_name(pixels: np.ndarray) -> str:
    """The named background colour (``gray`` included) nearest to the median of ``pixels`` ``[N, 3]``."""
    names = list(BACKGROUND_COLOURS)
    table = np.array([BACKGROUND_COLOURS[name] for name in names], dtype=np.float32)
    median = np.median(pixels.reshape(-1, 3).astype(np.float32), axis=0)
    return names[int(np.argmin(np.linalg.norm(table - median, axis=1)))]


# --- the templates' example inputs --------------------------------------------------------------

def _large_shape_scene(shape: str, colour: str, position: str, background: str) -> Scene:
    """One large shape at its nominal place (no jitter) on a plain background, canonically captioned."""
    size = "large"
    label = ShapeLabel(shape, colour, size, position, nominal_center(position, size), SIZE_FRACTIONS[size] * IMAGE_SIZE)
    return Scene((label,), (background,), canonical_caption(shape, colour, size, position, (background,)))


def example_scene() -> Scene:
    """The picture the editor's ControlNet, outpainting and inpainting templates start from."""
    return _large_shape_scene("star", "yellow", "center", "blue")


def example_silhouette_scene() -> Scene:
    """The scene whose silhouette the editor's silhouette-ControlNet template starts from: a shape
    away from the centre, so the picture shows that the silhouette, not the prompt, says where."""
    return _large_shape_scene("ring", "red", "top right", "white")


# File names in ``input/`` (the templates' LoadImage widgets name them).
EXAMPLE_SCENE_FILE = "kiln-demo-scene.png"
EXAMPLE_INPAINT_FILE = "kiln-demo-inpaint.png"
EXAMPLE_SILHOUETTE_FILE = "kiln-demo-silhouette.png"


def example_inputs() -> dict[str, Image.Image]:
    """``{file name: picture}``: the scene (RGB); the same scene with the star's box transparent
    (RGBA, alpha 0 where to inpaint, as ComfyUI's mask editor saves it; LoadImage's MASK = 1 - alpha);
    and a silhouette, white on black (RGB), for the silhouette ControlNet."""
    scene = example_scene()
    pixels = render(scene)
    alpha = ((1.0 - box_mask(scene.shapes[0])) * 255).astype(np.uint8)
    return {
        EXAMPLE_SCENE_FILE: Image.fromarray(pixels, "RGB"),
        EXAMPLE_INPAINT_FILE: Image.fromarray(np.dstack([pixels, alpha]), "RGBA"),
        EXAMPLE_SILHOUETTE_FILE: Image.fromarray(render_silhouette(example_silhouette_scene()), "RGB"),
    }


def write_example_inputs(folder: Path) -> list[Path]:
    """Write ``example_inputs()`` as PNGs into ``folder``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, picture in example_inputs().items():
        picture.save(folder / name, format="PNG", optimize=True)
        written.append(folder / name)
    return written


__all__ = ["EXAMPLE_INPAINT_FILE", "EXAMPLE_SCENE_FILE", "EXAMPLE_SILHOUETTE_FILE", "MASK_GROWTH", "PSNR_CAP_DB",
           "background_name", "box_mask", "example_inputs", "example_scene", "example_silhouette_scene", "halves",
           "mean_change", "psnr", "read_region", "replacement", "replacement_caption", "shape_iou",
           "write_example_inputs"]


if __name__ == "__main__":  # python -m diffusion.demo.editing [folder]: (re)write the example inputs
    import sys

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "input"
    for path in write_example_inputs(target):
        print(path)
