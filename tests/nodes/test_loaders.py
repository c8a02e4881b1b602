"""Loader nodes read models from the server's folders and describe themselves as ComfyUI's do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from diffusion.devices import DeviceManager
from engine.registry import NodeRegistry
from nodes import loaders
from tests.helpers.tiny_checkpoint import SD1_UNET, TINY_VAE, write_tiny_checkpoint
from tests.nodes.test_object_info_parity import node_differences

REFERENCE = json.loads((Path(__file__).parents[1] / "fixtures" / "comfyui-object-info.json").read_text())


@pytest.fixture(scope="module")
def tiny_sd1(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_sd1.safetensors", "sd1")


@pytest.fixture
def devices(node_context):
    manager = DeviceManager(cpu=True)
    node_context.resources["devices"] = manager
    return manager


@pytest.fixture
def installed(folders, tiny_sd1, devices):
    """The tiny checkpoint in models/checkpoints/sd, and its parts as separate files."""
    checkpoints = folders.paths("checkpoints")[0] / "sd"
    checkpoints.mkdir(parents=True)
    (checkpoints / "tiny_sd1.safetensors").write_bytes(tiny_sd1.path.read_bytes())
    for folder, prefix in (("vae", "first_stage_model."), ("diffusion_models", "model.diffusion_model."),
                           ("text_encoders", "cond_stage_model.transformer.")):
        directory = folders.paths(folder)[0]
        directory.mkdir(parents=True, exist_ok=True)
        part = {k[len(prefix):]: v for k, v in tiny_sd1.state_dict.items() if k.startswith(prefix)}
        save_file(part, str(directory / f"tiny_{folder}.safetensors"))
    return folders


@pytest.mark.parametrize("class_type", list(loaders.NODE_CLASS_MAPPINGS))
def test_node_info_matches_comfyui(class_type, node_context):
    registry = NodeRegistry()
    registry.add_module(loaders.NODE_CLASS_MAPPINGS, loaders.NODE_DISPLAY_NAME_MAPPINGS, "nodes.loaders",
                        builtin=True)
    assert node_differences(class_type, registry.node_info(class_type), REFERENCE[class_type]) == []


def test_file_lists_come_from_the_model_folders(installed):
    assert loaders.CheckpointLoaderSimple.INPUT_TYPES()["required"]["ckpt_name"][0] == ["sd/tiny_sd1.safetensors"]
    assert loaders.VAELoader.INPUT_TYPES()["required"]["vae_name"][0] == ["tiny_vae.safetensors", "pixel_space"]
    assert loaders.UNETLoader.INPUT_TYPES()["required"]["unet_name"][0] == ["tiny_diffusion_models.safetensors"]
    assert loaders.CLIPLoader.INPUT_TYPES()["required"]["clip_name"][0] == ["tiny_text_encoders.safetensors"]


def test_checkpoint_loader_returns_model_clip_and_vae(installed, devices, tiny_sd1):
    model, clip, vae = loaders.CheckpointLoaderSimple().load_checkpoint("sd/tiny_sd1.safetensors")
    assert model.unet.config == SD1_UNET and model.devices is devices
    assert vae.autoencoder.config == TINY_VAE and vae.downscale_ratio == 8
    assert clip is not None and clip.width == 64
    expected = tiny_sd1.state_dict["model.diffusion_model.input_blocks.0.0.weight"]
    assert torch.equal(model.unet.input_blocks[0][0].weight, expected)


def test_vae_loader_reads_a_vae_file_and_offers_pixel_space(installed):
    (vae,) = loaders.VAELoader().load_vae("tiny_vae.safetensors")
    assert vae.autoencoder.config == TINY_VAE
    (pixels,) = loaders.VAELoader().load_vae("pixel_space")
    image = torch.rand(1, 8, 8, 3)
    torch.testing.assert_close(pixels.decode(pixels.encode(image)), image)


def test_unet_loader_keeps_or_narrows_the_weight_dtype(installed):
    (model,) = loaders.UNETLoader().load_unet("tiny_diffusion_models.safetensors", "default")
    assert model.unet.config == SD1_UNET
    assert model.unet.input_blocks[0][0].weight.dtype == torch.float32
    (fp8,) = loaders.UNETLoader().load_unet("tiny_diffusion_models.safetensors", "fp8_e5m2")
    assert fp8.unet.input_blocks[0][0].weight.dtype == torch.float8_e5m2


def test_clip_loader_reads_a_standalone_clip_l_file(installed):
    (clip,) = loaders.CLIPLoader().load_clip("tiny_text_encoders.safetensors", "stable_diffusion")
    assert clip.width == 64


def test_clip_loader_refuses_other_recipes_by_name(installed):
    with pytest.raises(ValueError, match="sd3"):
        loaders.CLIPLoader().load_clip("tiny_text_encoders.safetensors", "sd3")


def test_a_missing_file_names_the_folder(installed):
    with pytest.raises(FileNotFoundError, match="checkpoints"):
        loaders.CheckpointLoaderSimple().load_checkpoint("nope.safetensors")
