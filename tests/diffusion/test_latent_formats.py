"""Latent formats: ComfyUI's SD1 scale and preview factors (comfy-compat §8, §12)."""

from __future__ import annotations

import torch

from diffusion.latent_formats import SD15, SDXL


def test_sd15_scaling_round_trips_through_model_space():
    latent = torch.randn(1, 4, 2, 2)
    torch.testing.assert_close(SD15.process_in(latent), latent * 0.18215)
    torch.testing.assert_close(SD15.process_out(SD15.process_in(latent)), latent)


def test_preview_factors_are_channels_by_rgb():
    assert SD15.rgb_factors().shape == (4, 3)
    assert SD15.rgb_factors()[3].tolist() == torch.tensor([-0.2120, -0.2616, -0.7177]).tolist()
    assert SD15.rgb_bias() is None
    assert SDXL.rgb_bias().tolist() == torch.tensor([0.1084, -0.0175, -0.0011]).tolist()
