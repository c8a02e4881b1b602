"""Procedurally drawn, captioned scenes for Kiln's demo text-to-image model.

Every scene is one or two simple shapes (circle, square, triangle, star, ring, cross) in a named
colour and size, placed at one of nine named positions, on a plain or two-tone background. The
drawing parameters are kept as labels next to the caption, so the evaluator can check a generated
picture against what its prompt asked for.

Scenes are a pure function of ``(seed, index)``: the set is unlimited and reproducible without
storing anything. Drawing is done with PIL at ``SUPERSAMPLE`` times the target size and reduced
with a box filter, which anti-aliases the edges.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from .captions import canonical_caption, pair_caption, shape_caption

IMAGE_SIZE = 64
SUPERSAMPLE = 4

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 35),
    "green": (35, 170, 60),
    "blue": (35, 75, 225),
    "yellow": (245, 220, 40),
    "orange": (245, 135, 25),
    "purple": (135, 50, 185),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
BACKGROUND_COLOURS: dict[str, tuple[int, int, int]] = {**COLOURS, "gray": (128, 128, 128)}

SHAPES = ("circle", "square", "triangle", "star", "ring", "cross")
SIZES = ("small", "large")
# Side of the shape's bounding box as a fraction of the image side.
SIZE_FRACTIONS: dict[str, float] = {"small": 0.36, "large": 0.56}
# Positions as (column, row) in a 3 x 3 grid; 0 = left/top, 1 = middle, 2 = right/bottom.
POSITIONS: dict[str, tuple[int, int]] = {
    "top left": (0, 0),
    "top": (1, 0),
    "top right": (2, 0),
    "left": (0, 1),
    "center": (1, 1),
    "right": (2, 1),
    "bottom left": (0, 2),
    "bottom": (1, 2),
    "bottom right": (2, 2),
}
# Margin between the shape's box and the image border, as a fraction of the image side.
EDGE_MARGIN = 0.03
# Random offset of the shape's centre, as a fraction of the image side.
JITTER = 0.03
# Radius of the hole in a ring, as a fraction of its outer radius.
RING_HOLE = 0.5


@dataclass(frozen=True)
class ShapeLabel:
    """One drawn shape: what it is and exactly where it was drawn (pixels of the final image)."""

    shape: str
    colour: str
    size: str
    position: str
    center: tuple[float, float]
    side: float


@dataclass(frozen=True)
class Scene:
    """A scene's labels: shapes, background (one colour, or top and bottom halves) and caption."""

    shapes: tuple[ShapeLabel, ...]
    background: tuple[str, ...]
    caption: str
    image_size: int = IMAGE_SIZE
    extra: dict = field(default_factory=dict, compare=False)


def nominal_center(position: str, size: str, image_size: int = IMAGE_SIZE) -> tuple[float, float]:
    """Centre (x, y) in pixels of a shape of ``size`` at the named ``position``, without jitter.

    The outer columns and rows put the shape's box ``EDGE_MARGIN`` from the border, so a large
    shape in a corner still fits inside the picture.
    """
    side = SIZE_FRACTIONS[size] * image_size
    low = EDGE_MARGIN * image_size + side / 2
    high = image_size - low
    coordinates = (low, image_size / 2, high)
    column, row = POSITIONS[position]
    return coordinates[column], coordinates[row]


def shape_polygon(shape: str, center: tuple[float, float], side: float) -> list[tuple[float, float]]:
    """Outline of a polygonal shape that fills a ``side`` x ``side`` box around ``center``."""
    cx, cy = center
    half = side / 2
    if shape == "square":
        inner = half * 0.86
        return [(cx - inner, cy - inner), (cx + inner, cy - inner), (cx + inner, cy + inner), (cx - inner, cy + inner)]
    if shape == "triangle":
        return [(cx, cy - half), (cx + half, cy + half * 0.8), (cx - half, cy + half * 0.8)]
    if shape == "star":
        points = []
        for k in range(10):
            radius = half if k % 2 == 0 else half * 0.42
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle) + half * 0.1))
        return points
    if shape == "cross":
        arm = half * 0.34
        return [
            (cx - arm, cy - half), (cx + arm, cy - half), (cx + arm, cy - arm), (cx + half, cy - arm),
            (cx + half, cy + arm), (cx + arm, cy + arm), (cx + arm, cy + half), (cx - arm, cy + half),
            (cx - arm, cy + arm), (cx - half, cy + arm), (cx - half, cy - arm), (cx - arm, cy - arm),
        ]
    raise ValueError(f"{shape!r} is not a polygonal shape")


def render_mask(shape: str, center: tuple[float, float], side: float, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """Anti-aliased coverage (float32 ``[H, W]`` in 0..1) of one shape filling a ``side`` box at ``center``.

    Also the evaluator's template for recognising shapes.
    """
    scale = SUPERSAMPLE
    canvas = Image.new("L", (image_size * scale, image_size * scale), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy, half = center[0] * scale, center[1] * scale, side * scale / 2
    if shape in ("circle", "ring"):
        draw.ellipse((cx - half, cy - half, cx + half, cy + half), fill=255)
        if shape == "ring":
            hole = half * RING_HOLE
            draw.ellipse((cx - hole, cy - hole, cx + hole, cy + hole), fill=0)
    else:
        draw.polygon(shape_polygon(shape, (cx, cy), side * scale), fill=255)
    small = canvas.resize((image_size, image_size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def render_silhouette(scene: Scene) -> np.ndarray:
    """The scene's shapes filled white on black, uint8 RGB ``[H, W, 3]`` (a pixel is white where a shape
    covers at least half of it): the hint of the silhouette ControlNet, as a user would paint it."""
    size = scene.image_size
    covered = np.zeros((size, size), dtype=bool)
    for label in scene.shapes:
        covered |= render_mask(label.shape, label.center, label.side, size) >= 0.5
    return np.repeat(covered[..., None], 3, axis=-1).astype(np.uint8) * 255


def render(scene: Scene) -> np.ndarray:
    """Draw a scene: uint8 RGB ``[H, W, 3]``."""
    size = scene.image_size
    image = np.empty((size, size, 3), dtype=np.float32)
    top = np.array(BACKGROUND_COLOURS[scene.background[0]], dtype=np.float32)
    bottom = np.array(BACKGROUND_COLOURS[scene.background[-1]], dtype=np.float32)
    image[: size // 2] = top
    image[size // 2 :] = bottom
    for label in scene.shapes:
        coverage = render_mask(label.shape, label.center, label.side, size)[..., None]
        colour = np.array(COLOURS[label.colour], dtype=np.float32)
        image = image * (1.0 - coverage) + colour * coverage
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _place(rng: random.Random, position: str, size: str, image_size: int) -> ShapeLabel:
    """Draw-ready label for a shape at ``position`` with a small random offset (``JITTER``)."""
    cx, cy = nominal_center(position, size, image_size)
    jitter = JITTER * image_size
    center = (cx + rng.uniform(-jitter, jitter), cy + rng.uniform(-jitter, jitter))
    return ShapeLabel("", "", size, position, center, SIZE_FRACTIONS[size] * image_size)


def _far_apart(first: str, second: str) -> bool:
    """Two small shapes at these positions cannot overlap: two grid steps apart along some axis."""
    (c1, r1), (c2, r2) = POSITIONS[first], POSITIONS[second]
    return abs(c1 - c2) == 2 or abs(r1 - r2) == 2


def _background(rng: random.Random, used: set[str], two_tone: bool) -> tuple[str, ...]:
    free = [name for name in BACKGROUND_COLOURS if name not in used]
    if two_tone:
        return tuple(rng.sample(free, 2))
    return (rng.choice(free),)


def sample_scene(
    seed: int,
    index: int,
    image_size: int = IMAGE_SIZE,
    pair_fraction: float = 0.15,
    two_tone_fraction: float = 0.2,
) -> Scene:
    """Scene number ``index`` of the unlimited set ``seed``: a pure function of both.

    A share ``pair_fraction`` of scenes hold two small shapes at positions that cannot overlap, and
    a share ``two_tone_fraction`` have a background of two colours (top and bottom halves). The
    background never shares a colour with a shape.
    """
    rng = random.Random(f"kiln-demo:{seed}:{index}")
    positions = list(POSITIONS)
    two_tone = rng.random() < two_tone_fraction
    if rng.random() < pair_fraction:
        first_position = rng.choice([p for p in positions if any(_far_apart(p, q) for q in positions)])
        second_position = rng.choice([p for p in positions if _far_apart(first_position, p)])
        items = []
        for position in (first_position, second_position):
            placed = _place(rng, position, "small", image_size)
            items.append((rng.choice(SHAPES), rng.choice(list(COLOURS)), placed))
        background = _background(rng, {colour for _, colour, _ in items}, two_tone)
        labels = tuple(
            ShapeLabel(shape, colour, "small", placed.position, placed.center, placed.side) for shape, colour, placed in items
        )
        caption = pair_caption(
            rng, *[(label.shape, label.colour, label.size, label.position) for label in labels], background=background
        )
        return Scene(labels, background, caption, image_size)
    shape, colour, size = rng.choice(SHAPES), rng.choice(list(COLOURS)), rng.choice(SIZES)
    placed = _place(rng, rng.choice(positions), size, image_size)
    background = _background(rng, {colour}, two_tone)
    label = ShapeLabel(shape, colour, size, placed.position, placed.center, placed.side)
    caption = shape_caption(rng, shape, colour, size, placed.position, background)
    return Scene((label,), background, caption, image_size)


def evaluation_scenes(count: int = 216, seed: int = 20261126, image_size: int = IMAGE_SIZE) -> list[Scene]:
    """A fixed, balanced set of one-shape scenes on plain backgrounds, with canonical captions.

    Colours, shapes, positions and sizes are cycled so each appears about equally often; the
    combination order and the backgrounds are drawn from ``seed``.
    """
    rng = random.Random(f"kiln-demo-eval:{seed}")
    combos = [(s, c, p) for s in SHAPES for c in COLOURS for p in POSITIONS]
    rng.shuffle(combos)
    scenes = []
    for number in range(count):
        shape, colour, position = combos[number % len(combos)]
        size = SIZES[number % len(SIZES)]
        background = _background(rng, {colour}, two_tone=False)
        center = nominal_center(position, size, image_size)
        label = ShapeLabel(shape, colour, size, position, center, SIZE_FRACTIONS[size] * image_size)
        scenes.append(Scene((label,), background, canonical_caption(shape, colour, size, position, background), image_size))
    return scenes


def scene_batch(seed: int, start: int, count: int, image_size: int = IMAGE_SIZE) -> tuple[np.ndarray, list[str], list[Scene]]:
    """Scenes ``start .. start+count-1`` of set ``seed``: uint8 images ``[N, H, W, 3]``, captions, labels."""
    scenes = [sample_scene(seed, index, image_size) for index in range(start, start + count)]
    images = np.stack([render(scene) for scene in scenes])
    return images, [scene.caption for scene in scenes], scenes
