"""kiln-demo-edges and kiln-demo-silhouette: the demo model's ControlNets, trained by tools/train_demo_controlnet.py.

Each is an ordinary SD1 ControlNet file (``control_model.*``), read by ControlNetLoader; drawn from
its hint (Canny edges, or the shapes filled white on black) with a prompt that says what but not
where, it puts the shape where the hint is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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
SHIPPED_SILHOUETTE = ROOT / "models" / "controlnet" / "kiln-demo-silhouette.safetensors"
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


def test_silhouette_hints_are_the_painted_silhouettes():
    from diffusion.demo.dataset import evaluation_scenes, render_silhouette

    scenes = evaluation_scenes(3)
    hint = tool.as_hint(tool.scene_hints("silhouette", np.zeros((3, 64, 64, 3), np.uint8), scenes))
    painted = torch.from_numpy(np.stack([render_silhouette(scene) for scene in scenes])).movedim(-1, 1) / 255.0
    assert torch.equal(hint, painted)
    with pytest.raises(ValueError, match="unknown hint 'blob'"):
        tool.scene_hints("blob", np.zeros((1, 64, 64, 3), np.uint8), scenes[:1])


def test_a_cached_pool_is_reused_only_for_the_same_kind_of_hint(demo_parts, tmp_path, monkeypatch):
    from diffusion.demo.dataset import scene_batch

    vae, cache = demo_parts[2], tmp_path / "pool.npz"
    edges = tool.prepared_pool(tool.Settings(pool=4), vae, cache)
    silhouettes = tool.prepared_pool(tool.Settings(pool=4, hint="silhouette"), vae, cache)
    assert torch.equal(silhouettes[0], tool.silhouette_hints(scene_batch(tool.Settings.seed, 0, 4)[2]))
    assert not torch.equal(silhouettes[0], edges[0])

    def no_drawing(*_):
        raise AssertionError("the cached pool was drawn again")

    monkeypatch.setattr(tool, "scene_batch", no_drawing)
    again = tool.prepared_pool(tool.Settings(pool=4, hint="silhouette"), vae, cache)
    assert all(torch.equal(a, b) for a, b in zip(again, silhouettes))


def test_the_hint_names_the_default_file():
    assert tool.parse_args([])[1].out.name == "kiln-demo-edges.safetensors"
    assert tool.parse_args(["--hint", "silhouette"])[1].out.name == "kiln-demo-silhouette.safetensors"
    with pytest.raises(SystemExit):
        tool.parse_args(["--hint", "blob"])


def test_prompts_say_what_is_drawn_but_not_where():
    from diffusion.demo.dataset import evaluation_scenes

    scene = evaluation_scenes(1)[0]
    label = scene.shapes[0]
    prompt = tool.scene_prompt(scene)
    assert prompt == f"a {label.colour} {label.shape} on a {scene.background[0]} background"


@pytest.mark.parametrize("hint", ["edges", "silhouette"])
def test_a_few_steps_write_a_file_that_controlnet_loader_reads(tmp_path, hint):
    out = tmp_path / f"{hint}.safetensors"
    report = tool.main(["--hint", hint, "--steps", "2", "--pool", "16", "--batch", "4", "--save-every", "0",
                        "--out", str(out)])
    assert report["steps_done"] == 2 and report["wall_seconds"] > 0
    with safe_open(str(out), "pt") as handle:
        keys = list(handle.keys())
        metadata = handle.metadata()
        assert handle.get_tensor(keys[0]).dtype == torch.float16
    assert all(key.startswith("control_model.") for key in keys)
    assert json.loads(metadata["kiln_demo_controlnet"])["hint"] == tool.HINTS[hint]
    assert tool.HINTS == {"edges": "Canny 0.4/0.8", "silhouette": "filled silhouette, white shapes on black"}
    control = load_controlnet(out, CPU())
    assert control.control_model.config.model_channels == DEMO_UNET.model_channels


@pytest.mark.parametrize("hint, path", [("edges", SHIPPED_CONTROLNET), ("silhouette", SHIPPED_SILHOUETTE)])
def test_the_shipped_controlnets_are_small_sd1_controlnets_for_the_demo_unet(hint, path):
    assert path.stat().st_size < 8_000_000
    control = load_controlnet(path, CPU())
    assert control.control_model.config == DEMO_UNET
    with safe_open(str(path), "pt") as handle:
        assert json.loads(handle.metadata()["kiln_demo_controlnet"])["hint"] == tool.HINTS[hint]


def test_the_shipped_controlnet_puts_the_shape_where_the_edges_are(demo_parts):
    unet, text, vae = demo_parts
    control = load_controlnet(SHIPPED_CONTROLNET, CPU()).control_model.float().eval()
    with_edges = tool.hint_iou(unet, text, control, vae, count=8)
    without = tool.hint_iou(unet, text, control, vae, count=8, strength=0.0)
    # Measured with the shipped files: 0.42 with the edges, 0.07 without (the prompt says no place).
    assert with_edges["iou"] >= 0.35
    assert with_edges["iou"] > without["iou"] + 0.25


def test_the_shipped_silhouette_controlnet_draws_the_shape_in_the_silhouette(demo_parts):
    unet, text, vae = demo_parts
    control = load_controlnet(SHIPPED_SILHOUETTE, CPU()).control_model.float().eval()
    with_silhouette = tool.hint_iou(unet, text, control, vae, count=8, hint_kind="silhouette")
    without = tool.hint_iou(unet, text, control, vae, count=8, strength=0.0, hint_kind="silhouette")
    # Measured with the shipped files: 0.86 with the silhouette, 0.07 without (the prompt says no place).
    assert with_silhouette["iou"] >= 0.7 and with_silhouette["iou_at_least_0.5"] == 1.0
    assert with_silhouette["iou"] > without["iou"] + 0.4
