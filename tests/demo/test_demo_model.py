"""The shipped demo checkpoint draws what it is asked for, through the ordinary nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import eval_demo

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ROOT / "models" / "checkpoints" / "kiln-demo.safetensors"
PROMPTS = 8

pytestmark = [
    # About ten pictures of 20 steps each: seconds on an idle CPU, minutes on a crowded one.
    pytest.mark.timeout(900),
]


def test_default_workflow_draws_the_asked_colour_and_position():
    with eval_demo.node_context(ROOT / "models", cpu=True):
        workflow = eval_demo.DemoWorkflow(CHECKPOINT.name)
        result, images = eval_demo.evaluate(workflow, eval_demo.DEFAULT_SETTINGS, PROMPTS, seed=1000)
    assert len(images) == PROMPTS and images[0].shape == (64, 64, 3)
    assert result["colour"] >= 0.75, result
    assert result["position"] >= 0.75, result


def test_guidance_follows_the_prompt_rather_than_the_seed():
    """One seed, two prompts: the pictures differ where the prompts do."""
    from diffusion.demo.metrics import read_image

    with eval_demo.node_context(ROOT / "models", cpu=True):
        workflow = eval_demo.DemoWorkflow(CHECKPOINT.name)
        left = workflow.generate("a large red circle on the left on a white background", 5, eval_demo.DEFAULT_SETTINGS)
        right = workflow.generate("a large blue circle on the right on a white background", 5,
                                  eval_demo.DEFAULT_SETTINGS)
    first, second = read_image(left), read_image(right)
    assert (first.colour, second.colour) == ("red", "blue")
    assert first.position.endswith("left") and second.position.endswith("right")
