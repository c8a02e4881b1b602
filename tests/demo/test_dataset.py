"""The demo data set: scenes are reproducible, varied, and their labels describe their pixels."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from diffusion.demo.captions import POSITION_PHRASES, POSITION_WORDS, SIZE_WORDS
from diffusion.demo.dataset import (
    BACKGROUND_COLOURS, COLOURS, IMAGE_SIZE, POSITIONS, SHAPES, SIZES, evaluation_scenes, render, render_mask,
    render_silhouette, sample_scene, scene_batch,
)
from diffusion.demo.metrics import read_image, score_readings

SEED = 11


@pytest.fixture(scope="module")
def scenes():
    return [sample_scene(SEED, index) for index in range(600)]


def test_scenes_are_a_pure_function_of_seed_and_index():
    first = sample_scene(SEED, 42)
    assert sample_scene(SEED, 42) == first
    assert np.array_equal(render(sample_scene(SEED, 42)), render(first))
    others = [sample_scene(SEED + 1, 42), sample_scene(SEED, 43)]
    assert all(other.caption != first.caption or other.shapes != first.shapes for other in others)


def test_batch_is_small_rgb_uint8():
    images, captions, labels = scene_batch(SEED, 10, 8)
    assert images.shape == (8, IMAGE_SIZE, IMAGE_SIZE, 3) and images.dtype == np.uint8
    assert captions == [label.caption for label in labels]
    assert labels[0] == sample_scene(SEED, 10)


def test_every_shape_colour_size_and_position_occurs(scenes):
    shapes = [shape for scene in scenes for shape in scene.shapes]
    assert {s.shape for s in shapes} == set(SHAPES)
    assert {s.colour for s in shapes} == set(COLOURS)
    assert {s.size for s in shapes} == set(SIZES)
    assert {s.position for s in shapes} == set(POSITIONS)
    counts = Counter(len(scene.shapes) for scene in scenes)
    assert counts[1] > counts[2] > 0
    assert any(len(scene.background) == 2 for scene in scenes)
    assert len(SHAPES) >= 6 and len(COLOURS) >= 8 and len(POSITIONS) == 9


def test_captions_name_what_was_drawn(scenes):
    for scene in scenes:
        caption = scene.caption
        for label in scene.shapes:
            assert re.search(rf"\b{label.colour}\b", caption)
            assert re.search(rf"\b{label.shape}\b", caption)
            assert any(re.search(rf"\b{word}\b", caption) for word in SIZE_WORDS[label.size])
            phrases = POSITION_PHRASES[label.position] + POSITION_WORDS[label.position]
            assert any(phrase in caption for phrase in phrases), (caption, label.position)
        for colour in scene.background:
            assert re.search(rf"\b{colour}\b.*background", caption)


def test_captions_vary_in_phrasing(scenes):
    one_shape = [scene.caption for scene in scenes if len(scene.shapes) == 1]
    openings = Counter(caption.split()[0] for caption in one_shape)
    assert len(openings) >= 5
    assert any("," in caption for caption in one_shape) and any("," not in caption for caption in one_shape)


def test_background_never_shares_a_shape_colour(scenes):
    for scene in scenes:
        assert not {label.colour for label in scene.shapes} & set(scene.background)


def test_pixels_match_labels_of_one_shape_scenes(scenes):
    """The pixel reader recovers every label of the drawn scenes (plain and two-tone backgrounds)."""
    single = [scene for scene in scenes if len(scene.shapes) == 1]
    readings = [read_image(render(scene)) for scene in single]
    expected = [(s.shapes[0].shape, s.shapes[0].colour, s.shapes[0].size, s.shapes[0].position) for s in single]
    assert score_readings(readings, expected) == {"colour": 1.0, "position": 1.0, "size": 1.0, "shape": 1.0}


def test_pixels_match_labels_of_two_shape_scenes(scenes):
    """Both shapes are drawn where their labels say, in their colours, without overlapping."""
    pairs = [scene for scene in scenes if len(scene.shapes) == 2][:40]
    assert pairs
    for scene in pairs:
        image = render(scene).astype(np.float32)
        masks = [render_mask(l.shape, l.center, l.side) > 0.99 for l in scene.shapes]
        assert not (masks[0] & masks[1]).any()
        for label, mask in zip(scene.shapes, masks):
            assert np.abs(image[mask] - np.array(COLOURS[label.colour])).max() <= 1.0
        untouched = sum(render_mask(l.shape, l.center, l.side) for l in scene.shapes) == 0
        height = IMAGE_SIZE // 2
        for rows, colour in ((slice(0, height), scene.background[0]), (slice(height, None), scene.background[-1])):
            assert np.array_equal(np.unique(image[rows][untouched[rows]], axis=0), [BACKGROUND_COLOURS[colour]])


def test_two_tone_background_has_its_colours_top_and_bottom(scenes):
    scene = next(s for s in scenes if len(s.background) == 2)
    image = render(scene)
    top, bottom = (np.array(BACKGROUND_COLOURS[name]) for name in scene.background)
    assert np.array_equal(image[0, 0], top) and np.array_equal(image[-1, -1], bottom)


def test_edges_are_anti_aliased():
    scene = next(s for s in (sample_scene(SEED, i) for i in range(50)) if s.shapes[0].shape == "circle")
    coverage = render_mask("circle", scene.shapes[0].center, scene.shapes[0].side)
    partial = (coverage > 0.05) & (coverage < 0.95)
    assert partial.sum() >= 10


def test_a_silhouette_is_the_scenes_shapes_white_on_black(scenes):
    """Every shape of the scene, white where it covers at least half a pixel; black elsewhere."""
    for scene in [s for s in scenes if len(s.shapes) == 1][:6] + [s for s in scenes if len(s.shapes) == 2][:6]:
        silhouette = render_silhouette(scene)
        assert silhouette.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and silhouette.dtype == np.uint8
        assert set(np.unique(silhouette)) <= {0, 255}
        assert (silhouette == silhouette[..., :1]).all()
        covered = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
        for label in scene.shapes:
            shape_covered = render_mask(label.shape, label.center, label.side) >= 0.5
            assert shape_covered.any() and (silhouette[shape_covered] == 255).all()
            covered |= shape_covered
        assert (silhouette[~covered] == 0).all()


def test_evaluation_scenes_are_fixed_and_balanced():
    scenes = evaluation_scenes(216)
    assert scenes == evaluation_scenes(216)
    assert len(scenes) == 216 and all(len(s.shapes) == 1 and len(s.background) == 1 for s in scenes)
    labels = [s.shapes[0] for s in scenes]
    for attribute, values in (("shape", SHAPES), ("colour", COLOURS), ("position", POSITIONS), ("size", SIZES)):
        counts = Counter(getattr(label, attribute) for label in labels)
        assert set(counts) == set(values)
        assert max(counts.values()) - min(counts.values()) <= len(scenes) // len(values) // 2
    first = scenes[0].shapes[0]
    assert scenes[0].caption.startswith(f"a {first.size} {first.colour} {first.shape} ")
    readings = [read_image(render(scene)) for scene in scenes]
    expected = [(l.shape, l.colour, l.size, l.position) for l in labels]
    assert score_readings(readings, expected)["shape"] == 1.0
