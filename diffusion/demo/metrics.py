"""Read a demo picture back into labels: the shape's colour, position, size and kind, from pixels.

The evaluator uses this to score generated images against their prompts; the data set's tests use
it to check that the labels describe what was drawn. It expects one shape on a plain or two-tone
(top/bottom) background:

1. Background: the median colour of the border pixels of the top half and of the bottom half.
2. Foreground: pixels far (in RGB) from the background of their half.
3. Colour: the median foreground colour, named by the nearest of ``COLOURS``.
4. Size and position: the foreground's bounding box; its side picks small or large, its centre the
   nearest of the nine nominal centres for that size.
5. Shape: the foreground cropped to its box and resized to a square, compared by IoU with each
   shape's template rendered and cropped the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from .dataset import COLOURS, IMAGE_SIZE, POSITIONS, SHAPES, SIZE_FRACTIONS, nominal_center, render_mask

# RGB distance from the background above which a pixel counts as foreground.
FOREGROUND_DISTANCE = 80.0
# Pixels of the foreground needed to call anything a shape.
MIN_FOREGROUND_PIXELS = 12
TEMPLATE_SIDE = 32


@dataclass(frozen=True)
class Reading:
    """What a picture shows, as far as pixels tell; ``None`` where nothing was found."""

    colour: str | None
    position: str | None
    size: str | None
    shape: str | None
    shape_scores: dict[str, float]


def _border_median(pixels: np.ndarray) -> np.ndarray:
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return np.median(border, axis=0)


def background_of(image: np.ndarray) -> np.ndarray:
    """Per-pixel background colour (float ``[H, W, 3]``) from the borders of each half."""
    height = image.shape[0]
    half = height // 2
    background = np.empty(image.shape, dtype=np.float32)
    background[:half] = _border_median(image[:half].astype(np.float32))
    background[half:] = _border_median(image[half:].astype(np.float32))
    return background


def foreground_mask(image: np.ndarray) -> np.ndarray:
    """Boolean ``[H, W]``: pixels nearer the shape's colour than the background of their half.

    A first pass takes the pixels far from the background (``FOREGROUND_DISTANCE``); their median is
    the shape's colour, and the final mask keeps the pixels closer to it than to the background,
    so a low-contrast pair (yellow on orange) keeps the whole shape.
    """
    pixels = image.astype(np.float32)
    background = background_of(image)
    from_background = np.linalg.norm(pixels - background, axis=-1)
    rough = from_background > FOREGROUND_DISTANCE
    if rough.sum() < MIN_FOREGROUND_PIXELS:
        return rough
    shape_colour = np.median(pixels[rough], axis=0)
    from_shape = np.linalg.norm(pixels - shape_colour, axis=-1)
    return (from_shape < from_background) & (from_background > FOREGROUND_DISTANCE / 2)


def nearest_colour(rgb: np.ndarray) -> str:
    """The named colour nearest to ``rgb`` (Euclidean in RGB)."""
    names = list(COLOURS)
    table = np.array([COLOURS[name] for name in names], dtype=np.float32)
    return names[int(np.argmin(np.linalg.norm(table - rgb, axis=1)))]


def _bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), exclusive ends, of the rows and columns holding at least two mask pixels."""
    columns = np.flatnonzero(mask.sum(axis=0) >= 2)
    rows = np.flatnonzero(mask.sum(axis=1) >= 2)
    if len(columns) == 0 or len(rows) == 0:
        rows, columns = np.nonzero(mask)[0], np.nonzero(mask)[1]
    return int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1


def _crop_square(mask: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    crop = Image.fromarray((mask[y0:y1, x0:x1] * 255).astype(np.uint8))
    resized = crop.resize((TEMPLATE_SIDE, TEMPLATE_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / 255.0


@lru_cache(maxsize=None)
def shape_templates() -> dict[str, np.ndarray]:
    """Each shape rendered large, cropped to its own bounding box and resized to the template side."""
    size = 128
    templates = {}
    for shape in SHAPES:
        coverage = render_mask(shape, (size / 2, size / 2), size * 0.8, size) > 0.5
        templates[shape] = _crop_square(coverage.astype(np.float32), _bounding_box(coverage))
    return templates


def classify_shape(mask: np.ndarray, box: tuple[int, int, int, int]) -> dict[str, float]:
    """Soft IoU of the cropped foreground with each shape template."""
    crop = _crop_square(mask.astype(np.float32), box)
    scores = {}
    for shape, template in shape_templates().items():
        intersection = np.minimum(crop, template).sum()
        union = np.maximum(crop, template).sum()
        scores[shape] = float(intersection / max(union, 1e-6))
    return scores


def read_image(image: np.ndarray) -> Reading:
    """Classify one uint8 RGB picture ``[H, W, 3]`` holding one shape."""
    image_size = image.shape[0]
    mask = foreground_mask(image)
    if mask.sum() < MIN_FOREGROUND_PIXELS:
        return Reading(None, None, None, None, {})
    colour = nearest_colour(np.median(image[mask].astype(np.float32), axis=0))
    box = _bounding_box(mask)
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) / image_size
    small, large = SIZE_FRACTIONS["small"], SIZE_FRACTIONS["large"]
    size = "small" if side < (small + large) / 2 else "large"
    center = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    position = min(
        POSITIONS, key=lambda name: float(np.linalg.norm(center - np.array(nominal_center(name, size, image_size))))
    )
    scores = classify_shape(mask, box)
    return Reading(colour, position, size, max(scores, key=scores.get), scores)


def score_readings(readings: list[Reading], expected: list[tuple[str, str, str, str]]) -> dict[str, float]:
    """Accuracy of colour, position, size and shape against ``(shape, colour, size, position)`` labels."""
    counts = {"colour": 0, "position": 0, "size": 0, "shape": 0}
    for reading, (shape, colour, size, position) in zip(readings, expected, strict=True):
        counts["colour"] += reading.colour == colour
        counts["position"] += reading.position == position
        counts["size"] += reading.size == size
        counts["shape"] += reading.shape == shape
    total = max(len(readings), 1)
    return {name: count / total for name, count in counts.items()}


__all__ = ["IMAGE_SIZE", "Reading", "classify_shape", "foreground_mask", "nearest_colour", "read_image",
           "score_readings", "shape_templates"]
