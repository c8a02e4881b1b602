"""The demo LoRA ``kiln-demo-pink``: its training tool writes kohya files that Kiln's LoraLoader applies
whole, and the shipped file teaches the shipped checkpoint a colour it did not know.

Pictures are made through the ordinary nodes at the default workflow settings (KSampler steps 20,
cfg 5, euler, normal), as ``tools/eval_demo_lora.py`` measures them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from diffusion.demo.dataset import COLOURS, evaluation_scenes
from diffusion.demo.lora_data import (
    EXTRA_COLOURS, colour_distance, read_colour, render_scene, sample_colour_scene,
)
from tools import eval_demo_lora
from tools.eval_demo import DEFAULT_SETTINGS, DemoWorkflow

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "loras" / "kiln-demo-pink.safetensors"
CHECKPOINT = ROOT / "models" / "checkpoints" / "kiln-demo.safetensors"
PINK_PROMPT = "a large pink circle in the center on a gray background"
# The adapted layers of the demo model: 8 transformer blocks x 15 UNet layers, 3 text layers x 6.
UNET_LAYERS, TEXT_LAYERS = 120, 18

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def tiny_lora(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo_lora") / "tiny-pink.safetensors"
    command = [sys.executable, str(ROOT / "tools" / "train_demo_lora.py"), "--steps", "3", "--pool", "16",
               "--colour-pool", "8", "--invert-steps", "2", "--batch", "4", "--threads", "1", "--out", str(out)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return out, json.loads(completed.stdout.strip().splitlines()[-1])


def applied(lora: Path) -> eval_demo_lora.LoraApplication:
    with eval_demo_lora.node_context(ROOT / "models", cpu=True):
        lora_name, checkpoint_name = eval_demo_lora.register_files(lora, CHECKPOINT)
        _, application = eval_demo_lora.apply_lora(DemoWorkflow(checkpoint_name), lora_name)
    return application


# --- the data set extension ----------------------------------------------------------------------


def test_pink_is_far_from_every_base_colour_and_gray():
    pink = np.array(EXTRA_COLOURS["pink"], dtype=np.float32)
    for rgb in [*COLOURS.values(), (128, 128, 128)]:
        assert np.linalg.norm(pink - np.array(rgb, dtype=np.float32)) > 120


def test_pink_scenes_are_reproducible_captioned_and_read_back_as_pink():
    scenes = [sample_colour_scene(5, index) for index in range(12)]
    assert scenes == [sample_colour_scene(5, index) for index in range(12)]
    assert all(" pink " in f" {scene.caption} " for scene in scenes)
    assert all(read_colour(render_scene(scene)) == "pink" for scene in scenes)
    assert all(colour_distance(render_scene(scene)) < 15 for scene in scenes)


def test_the_base_evaluation_scenes_know_no_pink():
    assert "pink" not in COLOURS
    assert not any("pink" in scene.caption for scene in evaluation_scenes(216))


def test_the_lora_template_asks_for_the_prompt_tested_here():
    template = json.loads((ROOT / "web" / "templates" / "lora.json").read_text())
    prompts = [node["widgets_values"][0] for node in template["nodes"] if node["type"] == "CLIPTextEncode"]
    assert PINK_PROMPT in prompts


# --- the training tool ---------------------------------------------------------------------------


def test_training_writes_kohya_names_in_fp16_with_metadata(tiny_lora):
    out, report = tiny_lora
    assert report["steps_done"] == 3 and report["wall_seconds"] > 0
    assert out.stat().st_size < 2_000_000
    with safe_open(str(out), "pt") as handle:
        keys = set(handle.keys())
        bases = {key.rsplit(".", 2)[0] if key.endswith(".weight") else key.rsplit(".", 1)[0] for key in keys}
        suffixes = (".lora_down.weight", ".lora_up.weight", ".alpha")
        assert keys == {base + suffix for base in bases for suffix in suffixes}
        assert sum(base.startswith("lora_unet_") for base in bases) == UNET_LAYERS
        assert sum(base.startswith("lora_te_text_model_encoder_layers_") for base in bases) == TEXT_LAYERS
        assert "lora_unet_input_blocks_1_1_transformer_blocks_0_attn2_to_k" in bases
        assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj" in bases
        assert {handle.get_tensor(key).dtype for key in keys} == {torch.float16}
        assert handle.get_tensor("lora_unet_input_blocks_1_1_proj_in.lora_down.weight").shape == (8, 64, 1, 1)
        metadata = handle.metadata()
    described = json.loads(metadata["kiln_demo_lora"])
    assert described["steps_done"] == 3 and described["settings"]["rank"] == 8 and "pink" in described["teaches"]
    assert metadata["ss_network_dim"] == "8"


def test_loraloader_matches_every_key_of_a_trained_file(tiny_lora):
    application = applied(tiny_lora[0])
    assert application.unmatched == []
    assert application.adapters == UNET_LAYERS + TEXT_LAYERS
    assert (application.model_patches, application.clip_patches) == (UNET_LAYERS, TEXT_LAYERS)


def test_an_unknown_layer_is_reported_unmatched(tiny_lora, tmp_path):
    """The check above can fail: a layer the checkpoint lacks is reported, not silently dropped."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(tiny_lora[0]))
    for suffix in (".lora_down.weight", ".lora_up.weight", ".alpha"):
        known = state["lora_unet_input_blocks_1_1_proj_in" + suffix]
        state["lora_unet_input_blocks_9_1_proj_in" + suffix] = known.clone()
    broken = tmp_path / "broken.safetensors"
    save_file(state, str(broken))
    assert applied(broken).unmatched == ["lora_unet_input_blocks_9_1_proj_in"]


# --- the shipped file ----------------------------------------------------------------------------


def test_shipped_lora_applies_to_the_shipped_checkpoint_with_every_key_matched():
    assert SHIPPED.stat().st_size < 2_000_000
    application = applied(SHIPPED)
    assert application.unmatched == []
    assert (application.model_patches, application.clip_patches) == (UNET_LAYERS, TEXT_LAYERS)


def test_shipped_lora_draws_the_pink_prompt_pink():
    """For each seed the shape is much nearer pink with the LoRA than without; most read as pink.

    The template's prompt (a gray background: on blue, the muted pink the demo VAE draws reads as
    purple) sits near pink's border with purple, so the reading is asked of most seeds, the distance
    of every one.
    """
    read = {"with": [], "without": []}
    with eval_demo_lora.node_context(ROOT / "models", cpu=True):
        lora_name, checkpoint_name = eval_demo_lora.register_files(SHIPPED, CHECKPOINT)
        base = DemoWorkflow(checkpoint_name)
        adapted, _ = eval_demo_lora.apply_lora(base, lora_name)
        for seed in (1001, 1002, 1003):
            without = base.generate(PINK_PROMPT, seed, DEFAULT_SETTINGS)
            with_lora = adapted.generate(PINK_PROMPT, seed, DEFAULT_SETTINGS)
            assert colour_distance(with_lora) < colour_distance(without) - 40, seed
            read["with"].append(read_colour(with_lora))
            read["without"].append(read_colour(without))
    assert read["with"].count("pink") >= 2 and read["without"].count("pink") == 0, read
