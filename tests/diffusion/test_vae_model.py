"""The VAE value: IMAGE <-> latent conversions as ComfyUI's VAE, batching and tiling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from diffusion.devices import DeviceManager
from diffusion.models.vae import AutoencoderKL, VAEConfig
from diffusion.vae_model import VAE, crop_to_multiple, feather, tile_starts, tiled_apply

TINY = VAEConfig(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1)


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return VAE(AutoencoderKL(TINY).eval(), DeviceManager(cpu=True))


def test_encode_is_the_posterior_mean_of_pixels_in_minus_one_to_one(vae):
    image = torch.rand(2, 32, 24, 3)
    latent = vae.encode(image)
    with torch.no_grad():
        expected = vae.autoencoder.encode(image.movedim(-1, 1) * 2 - 1)
    assert latent.shape == (2, 4, 4, 3) and latent.dtype == torch.float32
    torch.testing.assert_close(latent, expected)


def test_encode_centre_crops_to_the_downscale_ratio(vae):
    image = torch.rand(1, 21, 19, 4)  # alpha is dropped too
    torch.testing.assert_close(vae.encode(image), vae.encode(image[:, 2:18, 1:17, :3]))
    assert crop_to_multiple(image, 8).shape == (1, 16, 16, 4)


def test_decode_maps_back_to_zero_one_and_clamps(vae):
    latent = torch.randn(2, 4, 3, 5) * 3
    image = vae.decode(latent)
    with torch.no_grad():
        expected = ((vae.autoencoder.decode(latent) + 1) / 2).clamp(0, 1).movedim(1, -1)
    assert image.shape == (2, 24, 40, 3)
    torch.testing.assert_close(image, expected)
    assert image.min() >= 0 and image.max() <= 1


def test_batches_split_to_fit_memory_give_the_same_result(vae, monkeypatch):
    latent = torch.randn(3, 4, 4, 4)
    whole = vae.decode(latent)
    one_at_a_time = vae.memory_used_decode(tuple(latent.shape)) * 3 // 2
    monkeypatch.setattr(vae.devices, "free_memory", lambda device=None: one_at_a_time)
    calls = []
    original = vae._decode_nchw
    monkeypatch.setattr(vae, "_decode_nchw", lambda x: calls.append(len(x)) or original(x))
    torch.testing.assert_close(vae.decode(latent), whole)
    assert calls == [1, 1, 1]


def test_too_large_for_memory_falls_back_to_tiles(vae, monkeypatch):
    latent = torch.randn(1, 4, 6, 6)
    monkeypatch.setattr(vae.devices, "free_memory", lambda device=None: 1)
    tiled = []
    monkeypatch.setattr(vae, "decode_tiled", lambda x: tiled.append(x.shape) or torch.zeros(1, 48, 48, 3))
    monkeypatch.setattr(vae, "encode_tiled", lambda x: tiled.append(x.shape) or torch.zeros(1, 4, 6, 6))
    vae.decode(latent)
    vae.encode(torch.rand(1, 48, 48, 3))
    assert tiled == [(1, 4, 6, 6), (1, 48, 48, 3)]


def test_out_of_memory_retries_in_tiles(vae, monkeypatch):
    latent = torch.randn(1, 4, 6, 6)
    expected = vae.decode_tiled(latent, 4, 4, 1)

    def exhausted(x):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(vae, "_decode_nchw", exhausted)
    monkeypatch.setattr(vae, "decode_tiled", lambda x: expected)
    assert vae.decode(latent) is expected


def test_a_tile_covering_everything_is_the_plain_decode(vae):
    latent = torch.randn(1, 4, 5, 6)
    torch.testing.assert_close(vae.decode_tiled(latent, tile_x=8, tile_y=8, overlap=2), vae.decode(latent))
    image = torch.rand(1, 40, 48, 3)
    torch.testing.assert_close(vae.encode_tiled(image, tile_x=64, tile_y=64, overlap=16), vae.encode(image))


def test_tiled_decode_and_encode_keep_shapes(vae):
    assert vae.decode_tiled(torch.randn(2, 4, 7, 5), tile_x=4, tile_y=4, overlap=1).shape == (2, 56, 40, 3)
    assert vae.encode_tiled(torch.rand(1, 56, 40, 3), tile_x=32, tile_y=32, overlap=8).shape == (1, 4, 7, 5)


def test_blending_weights_reproduce_any_local_operation_exactly():
    x = torch.randn(1, 2, 13, 11)
    upscale = lambda t: F.interpolate(t, scale_factor=8, mode="nearest")  # noqa: E731
    torch.testing.assert_close(tiled_apply(upscale, x, (5, 4), 2, 8, 2), upscale(x))
    image = torch.randn(1, 3, 48, 40)
    pool = lambda t: F.avg_pool2d(t, 8)  # noqa: E731
    torch.testing.assert_close(tiled_apply(pool, image, (16, 24), 8, 1 / 8, 3, align=8), pool(image))


def test_tiles_are_full_sized_and_the_last_is_flush_with_the_end():
    assert tile_starts(10, 4, 1) == [0, 3, 6]
    assert tile_starts(11, 4, 1) == [0, 3, 6, 7]
    assert tile_starts(3, 4, 1) == [0]
    assert tile_starts(40, 16, 4, align=8) == [0, 8, 16, 24]


def test_feather_ramps_only_on_sides_with_a_neighbour():
    torch.testing.assert_close(feather(6, 3, True, False), torch.tensor([1 / 3, 2 / 3, 1, 1, 1, 1]))
    torch.testing.assert_close(feather(6, 3, True, True), torch.tensor([1 / 3, 2 / 3, 1, 1, 2 / 3, 1 / 3]))
    torch.testing.assert_close(feather(4, 0, True, True), torch.ones(4))
