"""LoraLoader nodes: clones carry the LoRA, the file is read once per node, the unpatched model is untouched."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

import nodes.lora as lora_nodes
from diffusion.devices import DeviceManager
from diffusion.loading import load_checkpoint
from engine.registry import NodeRegistry
from nodes.lora import LoraLoader, LoraLoaderModelOnly
from tests.helpers.tiny_checkpoint import write_tiny_checkpoint
from tests.nodes.test_object_info_parity import comfyui_object_info, node_differences

UNET_LAYER = "input_blocks.1.1.proj_in"
TEXT_LAYER = "text_model.encoder.layers.0.self_attn.v_proj"


def assert_matches_comfyui(module) -> None:
    registry = NodeRegistry()
    registry.add_module(module.NODE_CLASS_MAPPINGS, module.NODE_DISPLAY_NAME_MAPPINGS, module.__name__, builtin=True)
    reference = comfyui_object_info()
    for name in module.NODE_CLASS_MAPPINGS:
        if name in reference:
            assert node_differences(name, registry.node_info(name), reference[name]) == [], name


@pytest.fixture
def models(folders, tmp_path):
    checkpoint = write_tiny_checkpoint(tmp_path / "tiny.safetensors")
    model, clip, _ = load_checkpoint(checkpoint.path, DeviceManager(cpu=True))
    g = torch.Generator().manual_seed(0)
    unet_weight = dict(model.unet.named_parameters())[UNET_LAYER + ".weight"]
    text_weight = dict(clip.model.named_parameters())[TEXT_LAYER + ".weight"]
    lora = {
        "lora_unet_" + UNET_LAYER.replace(".", "_") + ".lora_up.weight": torch.randn(unet_weight.shape[0], 2, 1, 1, generator=g),
        "lora_unet_" + UNET_LAYER.replace(".", "_") + ".lora_down.weight": torch.randn(2, unet_weight.shape[1], 1, 1, generator=g),
        "lora_te_" + TEXT_LAYER.replace(".", "_") + ".lora_up.weight": torch.randn(text_weight.shape[0], 2, generator=g),
        "lora_te_" + TEXT_LAYER.replace(".", "_") + ".lora_down.weight": torch.randn(2, text_weight.shape[1], generator=g),
    }
    lora_dir = folders.paths("loras")[0]
    lora_dir.mkdir(parents=True, exist_ok=True)
    save_file(lora, str(lora_dir / "style.safetensors"))
    return model, clip


def test_specs_match_comfyui(node_context):
    assert_matches_comfyui(lora_nodes)


def test_lora_loader_patches_clones_with_both_strengths(node_context, models):
    model, clip = models
    assert "style.safetensors" in LoraLoader.INPUT_TYPES()["required"]["lora_name"][0]
    new_model, new_clip = LoraLoader().load_lora(model, clip, "style.safetensors", 0.5, -1.0)
    assert new_model is not model and new_clip is not clip
    assert model.patches == {} and clip.patches == {}
    assert [p.strength for p in new_model.patches[UNET_LAYER + ".weight"]] == [0.5]
    assert [p.strength for p in new_clip.patches[TEXT_LAYER + ".weight"]] == [-1.0]
    plain = clip.encode("a cat")[0][0]
    assert not torch.allclose(new_clip.encode("a cat")[0][0], plain)
    assert torch.equal(clip.encode("a cat")[0][0], plain)


def test_zero_strengths_return_the_inputs_and_the_file_is_read_once(node_context, models, monkeypatch):
    model, clip = models
    node = LoraLoader()
    assert node.load_lora(model, clip, "style.safetensors", 0.0, 0.0) == (model, clip)
    import diffusion.loading

    reads = []
    original = diffusion.loading.read_state_dict
    monkeypatch.setattr(diffusion.loading, "read_state_dict", lambda path: reads.append(path) or original(path))
    first, _ = node.load_lora(model, clip, "style.safetensors", 1.0, 1.0)
    second, _ = node.load_lora(first, clip, "style.safetensors", 0.3, 1.0)
    assert len(reads) == 1
    entries = second.patches[UNET_LAYER + ".weight"]
    assert [p.strength for p in entries] == [1.0, 0.3] and entries[0].adapter is entries[1].adapter


def test_model_only_leaves_the_text_encoder_alone(node_context, models):
    model, _ = models
    (patched,) = LoraLoaderModelOnly().load_lora_model_only(model, "style.safetensors", 2.0)
    assert list(patched.patches) == [UNET_LAYER + ".weight"]
    x = torch.randn(1, 4, 8, 8)
    sigma = torch.tensor([3.0])
    context = torch.randn(1, 77, 64)
    before = model.apply_model(x, sigma, context)
    with_lora = patched.apply_model(x, sigma, context)
    assert not torch.allclose(before, with_lora)
    assert torch.equal(model.apply_model(x, sigma, context), before)
