"""Editing and control measurements of the demo model (``diffusion.demo.editing``, ``tools/eval_demo_control.py``).

The helpers are checked against hand-computed values; the shipped model is checked through the
ordinary nodes: inpainting a shape keeps the rest of the picture (PSNR outside the mask ≥ 30 dB, the
issue's target) and changes the masked box, and two-region area composition puts each prompt's
colour in its half.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffusion.demo.dataset import COLOURS, SHAPES, evaluation_scenes, render, render_mask
from diffusion.demo.editing import (
    PSNR_CAP_DB, box_mask, example_inputs, example_scene, halves, psnr, replacement, replacement_caption, shape_iou,
)

# As server.py: OpenMP threads sleep rather than spin while they wait, which on a shared two-core
# machine is the difference between seconds and minutes per picture (read when torch first loads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from tools import eval_demo_control as eval_control  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ROOT / "models" / "checkpoints" / "kiln-demo.safetensors"


@pytest.fixture(scope="module")
def workflow():
    """The demo workflow, loaded once; the node context stays open while the module's tests run."""
    with eval_control.node_context(ROOT / "models", cpu=True):
        yield eval_control.EditingWorkflow(CHECKPOINT.name)


# --- helpers -------------------------------------------------------------------------------------

def test_box_mask_covers_the_shape_and_grows_by_the_margin():
    for scene in evaluation_scenes(18):
        label = scene.shapes[0]
        mask = box_mask(label, grow=3)
        coverage = render_mask(label.shape, label.center, label.side)
        assert mask[coverage > 0].min() == 1.0, "every drawn pixel is masked"
        rows, columns = np.nonzero(mask)
        assert columns.max() - columns.min() + 1 <= label.side + 2 * 3 + 2
        assert rows.max() - rows.min() + 1 >= min(label.side, 64 - 1)


def test_psnr_matches_the_formula_and_is_capped_for_identical_pictures():
    first = np.zeros((4, 4, 3), dtype=np.uint8)
    second = first.copy()
    assert psnr(first, second) == PSNR_CAP_DB
    second[0, 0] = 16  # MSE = 16² · 3 / 48 = 16
    assert psnr(first, second) == pytest.approx(10 * np.log10(255**2 / 16))
    where = np.zeros((4, 4), dtype=bool)
    where[2:] = True
    assert psnr(first, second, where) == PSNR_CAP_DB, "only the pixels where the mask is true count"


def test_halves_split_along_the_named_axis():
    picture = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    left, right = halves(picture, "left-right")
    top, bottom = halves(picture, "top-bottom")
    assert left.shape == right.shape == (4, 3, 3) and top.shape == bottom.shape == (2, 6, 3)
    assert np.array_equal(np.concatenate([left, right], axis=1), picture)
    assert np.array_equal(np.concatenate([top, bottom], axis=0), picture)


def test_shape_iou_is_one_for_the_rendered_scene():
    for scene in evaluation_scenes(12):
        assert shape_iou(render(scene), scene.shapes[0]) > 0.8


def test_replacement_differs_in_shape_colour_and_background():
    for index, scene in enumerate(evaluation_scenes(54)):
        shape, colour = replacement(scene, index)
        label = scene.shapes[0]
        assert shape in SHAPES and colour in COLOURS
        assert shape != label.shape and colour != label.colour and colour not in scene.background
        caption = replacement_caption(scene, shape, colour)
        assert caption.startswith(f"a {label.size} {colour} {shape} ") and caption.endswith(" background")


def test_the_shipped_example_inputs_are_the_rendered_example_scene():
    """``input/`` holds what ``python -m diffusion.demo.editing`` writes (regenerate after a change)."""
    for name, expected in example_inputs().items():
        with Image.open(ROOT / "input" / name) as shipped:
            assert shipped.mode == expected.mode and shipped.size == (64, 64)
            assert np.array_equal(np.asarray(shipped), np.asarray(expected)), name
    inpaint = np.asarray(example_inputs()["kiln-demo-inpaint.png"])
    assert np.array_equal(inpaint[..., 3] == 0, box_mask(example_scene().shapes[0]) == 1)


# --- the shipped model ---------------------------------------------------------------------------

def test_inpainting_a_shape_keeps_the_rest_and_repaints_the_box(workflow):
    """The inpainting template's chain (VAEEncodeForInpaint, KSampler denoise 1, VAEDecode, ImageCompositeMasked).

    The composite keeps every pixel outside the mask; the sampled picture alone keeps them too on
    average (with an 8 x 8 latent the decoder spreads a large repainted box a little into the rest,
    so single cases can dip below 30 dB). The box is repainted: a large mean change, the old colour
    gone, and the asked colour read from the picture in most cases.
    """
    from diffusion.demo.metrics import read_image

    raw_psnr, new_colour = [], []
    for index, scene in enumerate(evaluation_scenes(4)):
        pixels, mask = render(scene), box_mask(scene.shapes[0])
        shape, colour = replacement(scene, index)
        raw, composite = workflow.inpaint(pixels, mask, replacement_caption(scene, shape, colour), 1000 + index,
                                          eval_control.DEFAULT_SETTINGS, "encode_for_inpaint", 1.0)
        outside = mask < 0.5
        assert psnr(composite, pixels, outside) == PSNR_CAP_DB, "the composite keeps the unmasked pixels exactly"
        assert np.abs(composite.astype(float) - pixels)[~outside].mean() > 20.0, (scene.caption, "box repainted")
        reading = read_image(composite)
        assert reading.colour != scene.shapes[0].colour, (scene.caption, "the old shape is gone")
        raw_psnr.append(psnr(raw, pixels, outside))
        new_colour.append(reading.colour == colour)
    assert np.mean(raw_psnr) >= 30.0, raw_psnr
    assert sum(new_colour) >= 3, new_colour


def test_area_composition_puts_each_colour_in_its_half(workflow):
    """Left and right prompts set by ConditioningSetArea on a 128 x 64 latent, base prompt empty (the
    area_composition template); the evaluator's first three left-right cases (its seeds)."""
    from diffusion.demo.metrics import read_image

    for index in (0, 2, 4):
        (colour_1, shape_1), (colour_2, shape_2) = eval_control.AREA_PAIRS[index // 2]
        picture = workflow.two_regions(eval_control.region_prompt(colour_1, shape_1),
                                       eval_control.region_prompt(colour_2, shape_2), "", "left-right",
                                       1000 + index, eval_control.DEFAULT_SETTINGS)
        assert picture.shape == (64, 128, 3)
        left, right = (read_image(half).colour for half in halves(picture, "left-right"))
        assert (left, right) == (colour_1, colour_2)
