"""kiln-demo-edges: the demo model's ControlNet, trained by tools/train_demo_controlnet.py.

It is an ordinary SD1 ControlNet file (``control_model.*``), read by ControlNetLoader; drawn from
Canny edges with a prompt that says what but not where, it puts the shape where the edges are.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from diffusion.controlnet.load import load_controlnet
from diffusion.demo.checkpoint import DEMO_UNET
from tools import train_demo_controlnet as tool
from tools.demo_training import load_demo_parts

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CHECKPOINT = ROOT / "models" / "checkpoints" / "kiln-demo.safetensors"
SHIPPED_CONTROLNET = ROOT / "models" / "controlnet" / "kiln-demo-edges.safetensors"
pytestmark = pytest.mark.timeout(600)


class CPU:
    device = torch.device("cpu")
    dtype = torch.float32


@pytest.fixture(scope="module")
def demo_parts():
    diffusion, vae = load_demo_parts(SHIPPED_CHECKPOINT)
    return diffusion.unet, diffusion.text, vae


def test_a_new_controlnet_copies_the_encoder_and_changes_nothing(demo_parts):
    unet = demo_parts[0]
    control = tool.controlnet_from_unet(unet)
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([10.0, 900.0])
    context, hint = torch.randn(2, 77, 128), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(control.input_blocks[1][0].in_layers[2].weight, unet.input_blocks[1][0].in_layers[2].weight)
        assert torch.equal(tool.controlled_eps(unet, control, x, t, context, hint), unet(x, t, context))


def test_hints_are_the_canny_nodes_edges():
    from nodes.preprocessors import Canny
    from diffusion.demo.dataset import evaluation_scenes, render

    images = torch.from_numpy(render(evaluation_scenes(1)[0]))[None]
    (node_hint,) = Canny().detect_edge(images.float() / 255.0, tool.CANNY_LOW, tool.CANNY_HIGH)
    hint = tool.as_hint(tool.edge_hints(images.numpy()))
    assert torch.equal(hint, node_hint.movedim(-1, 1))
    assert 0 < hint.mean() < 0.2


def test_prompts_say_what_is_drawn_but_not_where():
    from diffusion.demo.dataset import evaluation_scenes

    scene = evaluation_scenes(1)[0]
    label = scene.shapes[0]
    prompt = tool.scene_prompt(scene)
    assert prompt == f"a {label.colour} {label.shape} on a {scene.background[0]} background"


def test_a_few_steps_write_a_file_that_controlnet_loader_reads(tmp_path):
    out = tmp_path / "edges.safetensors"
    report = tool.main(["--steps", "2", "--pool", "16", "--batch", "4", "--save-every", "0", "--out", str(out)])
    assert report["steps_done"] == 2 and report["wall_seconds"] > 0
    with safe_open(str(out), "pt") as handle:
        keys = list(handle.keys())
        metadata = handle.metadata()
        assert handle.get_tensor(keys[0]).dtype == torch.float16
    assert all(key.startswith("control_model.") for key in keys)
    assert json.loads(metadata["kiln_demo_controlnet"])["hint"] == "Canny 0.4/0.8"
    control = load_controlnet(out, CPU())
    assert control.control_model.config.model_channels == DEMO_UNET.model_channels


def test_the_shipped_controlnet_is_a_small_sd1_controlnet_for_the_demo_unet():
    assert SHIPPED_CONTROLNET.stat().st_size < 8_000_000
    control = load_controlnet(SHIPPED_CONTROLNET, CPU())
    assert control.control_model.config == DEMO_UNET


def test_the_shipped_controlnet_puts_the_shape_where_the_edges_are(demo_parts):
    unet, text, vae = demo_parts
    control = load_controlnet(SHIPPED_CONTROLNET, CPU()).control_model.float().eval()
    with_edges = tool.hint_iou(unet, text, control, vae, count=8)
    without = tool.hint_iou(unet, text, control, vae, count=8, strength=0.0)
    # Measured with the shipped files: 0.42 with the edges, 0.07 without (the prompt says no place).
    assert with_edges["iou"] >= 0.35
    assert with_edges["iou"] > without["iou"] + 0.25
