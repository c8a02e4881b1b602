"""Scenes in colours the demo model never saw, for training and measuring a colour LoRA.

The base data set (``diffusion.demo.dataset``) draws its shapes in the eight ``COLOURS`` and stays
exactly as it is: its scenes, captions and evaluation prompts do not depend on anything here. This
module adds *extra* colours beside it, with its own seed namespace:

* ``EXTRA_COLOURS``: the new shape colours (``pink``, hot pink RGB (255, 105, 180): more than 130 RGB
  units from every base colour and from gray);
* ``sample_colour_scene``: one shape in an extra colour, phrased like the training captions
  (``diffusion.demo.captions``) and placed like the base scenes, on any base background;
* ``render_scene``: ``dataset.render`` with the palette extended by the extra colours;
* ``colour_prompts``: fixed, canonical evaluation prompts for an extra colour;
* ``read_colour``: the shape's colour named from the base colours *and* the extra ones (the base
  reader, ``diffusion.demo.metrics``, only knows the base eight).
"""

from __future__ import annotations

import random

import numpy as np

from .captions import canonical_caption, shape_caption
from .dataset import (
    BACKGROUND_COLOURS, COLOURS, IMAGE_SIZE, JITTER, POSITIONS, SHAPES, SIZE_FRACTIONS, SIZES, Scene, ShapeLabel,
    nominal_center, render_mask,
)
from .metrics import MIN_FOREGROUND_PIXELS, foreground_mask

EXTRA_COLOURS: dict[str, tuple[int, int, int]] = {"pink": (255, 105, 180)}


def palette(extra: dict[str, tuple[int, int, int]] | None = None) -> dict[str, tuple[int, int, int]]:
    """The base shape colours followed by ``extra`` (default ``EXTRA_COLOURS``)."""
    return {**COLOURS, **(EXTRA_COLOURS if extra is None else extra)}


def sample_colour_scene(seed: int, index: int, colour: str = "pink", image_size: int = IMAGE_SIZE,
                        two_tone_fraction: float = 0.2) -> Scene:
    """Scene ``index`` of the unlimited set ``seed`` of one shape in the extra ``colour``.

    Shape, size and position are drawn uniformly as in ``dataset.sample_scene``; the background is
    one or (``two_tone_fraction``) two of ``BACKGROUND_COLOURS``; the caption uses one of the
    training phrasings. A pure function of its arguments, with a seed namespace of its own, so it
    never repeats a base scene.
    """
    rng = random.Random(f"kiln-demo-colour:{colour}:{seed}:{index}")
    two_tone = rng.random() < two_tone_fraction
    shape, size, position = rng.choice(SHAPES), rng.choice(SIZES), rng.choice(list(POSITIONS))
    cx, cy = nominal_center(position, size, image_size)
    jitter = JITTER * image_size
    center = (cx + rng.uniform(-jitter, jitter), cy + rng.uniform(-jitter, jitter))
    backgrounds = list(BACKGROUND_COLOURS)
    background = tuple(rng.sample(backgrounds, 2)) if two_tone else (rng.choice(backgrounds),)
    label = ShapeLabel(shape, colour, size, position, center, SIZE_FRACTIONS[size] * image_size)
    caption = shape_caption(rng, shape, colour, size, position, background)
    return Scene((label,), background, caption, image_size)


def render_scene(scene: Scene, colours: dict[str, tuple[int, int, int]] | None = None) -> np.ndarray:
    """Draw a scene whose shapes may use extra colours: uint8 RGB ``[H, W, 3]``.

    The same compositing as ``dataset.render`` (backgrounds by half, anti-aliased coverage), with
    the shape colours looked up in ``colours`` (default: base + ``EXTRA_COLOURS``).
    """
    table = palette() if colours is None else colours
    size = scene.image_size
    image = np.empty((size, size, 3), dtype=np.float32)
    image[: size // 2] = np.array(BACKGROUND_COLOURS[scene.background[0]], dtype=np.float32)
    image[size // 2 :] = np.array(BACKGROUND_COLOURS[scene.background[-1]], dtype=np.float32)
    for label in scene.shapes:
        coverage = render_mask(label.shape, label.center, label.side, size)[..., None]
        image = image * (1.0 - coverage) + np.array(table[label.colour], dtype=np.float32) * coverage
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def colour_scene_batch(seed: int, start: int, count: int, colour: str = "pink",
                       image_size: int = IMAGE_SIZE) -> tuple[np.ndarray, list[str], list[Scene]]:
    """Extra-colour scenes ``start .. start+count-1``: uint8 images ``[N, H, W, 3]``, captions, labels."""
    scenes = [sample_colour_scene(seed, index, colour, image_size) for index in range(start, start + count)]
    if not scenes:
        return np.zeros((0, image_size, image_size, 3), np.uint8), [], []
    images = np.stack([render_scene(scene) for scene in scenes])
    return images, [scene.caption for scene in scenes], scenes


def colour_prompts(count: int = 24, colour: str = "pink", seed: int = 20261126) -> list[tuple[str, ShapeLabel, str]]:
    """Fixed evaluation prompts ``"a large pink circle in the center on a blue background"``, ...

    Returns ``(prompt, label, background)`` triples. The first is always that example; the rest
    cycle shapes and sizes, with positions and backgrounds drawn from ``seed``.
    """
    rng = random.Random(f"kiln-demo-colour-eval:{colour}:{seed}")
    combos = [(shape, size) for size in ("large", "small") for shape in SHAPES]
    prompts = []
    for number in range(count):
        if number == 0:
            shape, size, position, background = "circle", "large", "center", "blue"
        else:
            shape, size = combos[number % len(combos)]
            position, background = rng.choice(list(POSITIONS)), rng.choice(list(BACKGROUND_COLOURS))
        center = nominal_center(position, size)
        label = ShapeLabel(shape, colour, size, position, center, SIZE_FRACTIONS[size] * IMAGE_SIZE)
        prompts.append((canonical_caption(shape, colour, size, position, (background,)), label, background))
    return prompts


def shape_rgb(image: np.ndarray) -> np.ndarray | None:
    """Median RGB of the shape's pixels (``metrics.foreground_mask``), or None when none are found."""
    mask = foreground_mask(image)
    if mask.sum() < MIN_FOREGROUND_PIXELS:
        return None
    return np.median(image[mask].astype(np.float32), axis=0)


def read_colour(image: np.ndarray, colours: dict[str, tuple[int, int, int]] | None = None) -> str | None:
    """The shape's colour, nearest (Euclidean RGB) of base + extra colours; None without a shape."""
    rgb = shape_rgb(image)
    if rgb is None:
        return None
    table = palette() if colours is None else colours
    names = list(table)
    distances = np.linalg.norm(np.array([table[name] for name in names], dtype=np.float32) - rgb, axis=1)
    return names[int(np.argmin(distances))]


def colour_distance(image: np.ndarray, colour: str = "pink") -> float:
    """RGB distance of the shape's median colour to ``colour`` (441.7, the RGB diagonal, without a shape)."""
    rgb = shape_rgb(image)
    if rgb is None:
        return float(np.sqrt(3) * 255)
    return float(np.linalg.norm(rgb - np.array(palette()[colour], dtype=np.float32)))
