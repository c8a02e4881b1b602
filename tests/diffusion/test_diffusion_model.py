"""The MODEL value as a denoiser: D(x, σ) = calculate_denoised(σ, unet(calculate_input(σ, x), t(σ)), x)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from diffusion.devices import DeviceManager
from diffusion.diffusion_model import DiffusionModel
from diffusion.latent_formats import SD15
from diffusion.models.unet import UNetConfig, UNetModel
from diffusion.sampling.model_sampling import ModelSamplingDiscrete

TINY = UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, transformer_depth=(1, 0),
                  context_dim=16, num_heads=8)


class Recorder(nn.Module):
    """Stands in for the UNet: predicts zeros and remembers what it was given."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.calls = []

    def forward(self, x, timesteps, context=None, y=None, control=None, transformer_options=None):
        self.calls.append(dict(x=x, t=timesteps, context=context, options=transformer_options))
        return torch.zeros_like(x)


def model(unet, prediction="eps"):
    return DiffusionModel(unet, ModelSamplingDiscrete(prediction_type=prediction), SD15, DeviceManager(cpu=True))


def test_apply_model_is_input_scaling_then_unet_then_denoising():
    torch.manual_seed(0)
    unet = UNetModel(TINY).eval()
    denoiser = model(unet)
    x = torch.randn(2, 4, 8, 8) * 5
    sigma = torch.tensor([7.0, 0.5])
    context = torch.randn(2, 3, 16)
    sampling = denoiser.model_sampling
    with torch.no_grad():
        eps = unet(sampling.calculate_input(sigma, x), sampling.timestep(sigma).float(), context)
    torch.testing.assert_close(denoiser.apply_model(x, sigma, context), x - eps * sigma[:, None, None, None])


@pytest.mark.parametrize(("prediction", "expected_scale"), [("eps", lambda s: 1.0), ("v", lambda s: 1 / (s * s + 1))])
def test_a_zero_prediction_denoises_as_the_parameterisation_says(prediction, expected_scale):
    recorder = Recorder()
    x = torch.randn(1, 4, 4, 4)
    sigma = torch.tensor([3.0])
    denoised = model(recorder, prediction).apply_model(x, sigma, torch.zeros(1, 2, 16))
    torch.testing.assert_close(denoised, x * expected_scale(3.0))
    call = recorder.calls[0]
    torch.testing.assert_close(call["x"], x / (3.0**2 + 1) ** 0.5)
    assert call["t"].dtype == torch.float32


def test_clones_share_weights_but_not_patches_or_options():
    recorder = Recorder()
    original = model(recorder)
    original.patches["scale"] = ["first"]
    twin = original.clone()
    twin.patches["scale"].append("second")
    twin.model_options["transformer_options"]["patch"] = 1
    assert twin.unet is original.unet
    assert original.patches == {"scale": ["first"]}
    assert original.model_options == {"transformer_options": {}}


def test_the_clones_transformer_options_reach_the_unet_with_the_callers():
    recorder = Recorder()
    twin = model(recorder).clone()
    twin.model_options["transformer_options"]["patch"] = 1
    twin.apply_model(torch.zeros(1, 4, 2, 2), torch.tensor([1.0]), None, transformer_options={"extra": 2})
    assert recorder.calls[-1]["options"] == {"patch": 1, "extra": 2}


def test_memory_estimate_grows_with_batch_and_with_the_attention_over_pixels():
    denoiser = model(UNetModel(TINY))  # on the CPU: attention scores are materialised
    element, heads = 4, 8
    one = denoiser.memory_required((1, 4, 8, 8))
    assert one == 32 * 64 * 32 * element + heads * 64 * 64 * element
    assert denoiser.memory_required((2, 4, 8, 8)) == 2 * one
    no_attention = model(UNetModel(UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
                                              transformer_depth=(0, 1), context_dim=16)))
    assert no_attention.memory_required((1, 4, 16, 16)) == 4 * no_attention.memory_required((1, 4, 8, 8))
