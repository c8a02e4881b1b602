"""VAE nodes: decode and encode LATENT/IMAGE values, whole or tiled, with ComfyUI's inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from diffusion.devices import DeviceManager
from diffusion.models.vae import AutoencoderKL, VAEConfig
from diffusion.vae_model import VAE
from engine.registry import NodeRegistry
from nodes import vae as vae_nodes
from tests.nodes.test_object_info_parity import node_differences

REFERENCE = json.loads((Path(__file__).parents[1] / "fixtures" / "comfyui-object-info.json").read_text())


@pytest.fixture(scope="module")
def tiny_vae():
    torch.manual_seed(0)
    return VAE(AutoencoderKL(VAEConfig(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1)).eval(),
               DeviceManager(cpu=True))


class RecordingVAE:
    """Records the tile arguments the nodes pass; decodes to a 5-D video-like batch."""

    downscale_ratio = 8

    def __init__(self):
        self.calls = []

    def decode(self, latent):
        return torch.zeros(latent.shape[0], 2, 8, 8, 3)

    def decode_tiled(self, latent, **tiles):
        self.calls.append(tiles)
        return torch.zeros(latent.shape[0], 8, 8, 3)

    def encode_tiled(self, pixels, **tiles):
        self.calls.append(dict(tiles, channels=pixels.shape[-1]))
        return torch.zeros(1, 4, 1, 1)


@pytest.mark.parametrize("class_type", list(vae_nodes.NODE_CLASS_MAPPINGS))
def test_node_info_matches_comfyui(class_type):
    registry = NodeRegistry()
    registry.add_module(vae_nodes.NODE_CLASS_MAPPINGS, vae_nodes.NODE_DISPLAY_NAME_MAPPINGS, "nodes.vae",
                        builtin=True)
    assert node_differences(class_type, registry.node_info(class_type), REFERENCE[class_type]) == []


def test_encode_then_decode_gives_images_of_the_input_size(tiny_vae):
    pixels = torch.rand(2, 32, 40, 4)
    (latent,) = vae_nodes.VAEEncode().encode(pixels, tiny_vae)
    assert latent["samples"].shape == (2, 4, 4, 5)
    torch.testing.assert_close(latent["samples"], tiny_vae.encode(pixels[..., :3]))
    (images,) = vae_nodes.VAEDecode().decode(latent, tiny_vae)
    assert images.shape == (2, 32, 40, 3) and images.dtype == torch.float32


def test_decoded_video_frames_are_flattened_into_the_batch():
    (images,) = vae_nodes.VAEDecode().decode({"samples": torch.zeros(3, 4, 1, 1)}, RecordingVAE())
    assert images.shape == (6, 8, 8, 3)


def test_tiled_decode_converts_pixel_sizes_to_latent_units_and_shrinks_large_overlaps():
    vae = RecordingVAE()
    vae_nodes.VAEDecodeTiled().decode({"samples": torch.zeros(1, 4, 8, 8)}, vae, 512, 64, 64, 8)
    vae_nodes.VAEDecodeTiled().decode({"samples": torch.zeros(1, 4, 8, 8)}, vae, 128, 64, 64, 8)
    assert vae.calls == [dict(tile_x=64, tile_y=64, overlap=8), dict(tile_x=16, tile_y=16, overlap=4)]


def test_tiled_encode_passes_pixel_sizes_and_drops_alpha():
    vae = RecordingVAE()
    vae_nodes.VAEEncodeTiled().encode(torch.zeros(1, 8, 8, 4), vae, 512, 64, 64, 8)
    assert vae.calls == [dict(tile_x=512, tile_y=512, overlap=64, channels=3)]


def test_tiles_larger_than_the_image_match_the_plain_nodes(tiny_vae):
    latent = {"samples": torch.randn(1, 4, 6, 7)}
    (plain,) = vae_nodes.VAEDecode().decode(latent, tiny_vae)
    (tiled,) = vae_nodes.VAEDecodeTiled().decode(latent, tiny_vae, 512, 64, 64, 8)
    torch.testing.assert_close(tiled, plain)
    pixels = torch.rand(1, 48, 56, 3)
    (whole,) = vae_nodes.VAEEncode().encode(pixels, tiny_vae)
    (tiles,) = vae_nodes.VAEEncodeTiled().encode(pixels, tiny_vae, 512, 64, 64, 8)
    torch.testing.assert_close(tiles["samples"], whole["samples"])
