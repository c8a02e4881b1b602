"""ModelSamplingDiscrete: SD's scaled-linear DDPM schedule as sigmas (comfy-compat §10.3, §10.5)."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDPMScheduler

from diffusion.sampling.model_sampling import ZSNR_TERMINAL_ALPHA_BAR, ModelSamplingDiscrete


def diffusers_sigmas(**kwargs) -> torch.Tensor:
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", **kwargs)
    alphas_cumprod = scheduler.alphas_cumprod.double()
    return ((1 - alphas_cumprod) / alphas_cumprod).sqrt()


def test_sigmas_are_the_scaled_linear_ddpm_schedule_ascending():
    sampling = ModelSamplingDiscrete()
    assert sampling.sigmas.shape == (1000,)
    assert torch.all(sampling.sigmas[1:] > sampling.sigmas[:-1])
    torch.testing.assert_close(sampling.sigmas.double(), diffusers_sigmas(), rtol=1e-5, atol=1e-6)


def test_sigma_range_matches_comfyui_numbers():
    sampling = ModelSamplingDiscrete()
    assert float(sampling.sigma_min) == pytest.approx(0.029167, abs=1e-6)
    assert float(sampling.sigma_max) == pytest.approx(14.614641, abs=1e-5)


def test_timestep_is_nearest_in_log_sigma_and_round_trips():
    sampling = ModelSamplingDiscrete()
    t = torch.tensor([0, 1, 250, 999])
    assert torch.equal(sampling.timestep(sampling.sigmas[t]), t)
    between = (sampling.sigmas[10] * sampling.sigmas[11]).sqrt() * 1.001  # just above the log midpoint
    assert int(sampling.timestep(between)) == 11


def test_sigma_interpolates_log_sigma_between_integer_timesteps():
    sampling = ModelSamplingDiscrete()
    expected = math.exp(0.25 * math.log(sampling.sigmas[100]) + 0.75 * math.log(sampling.sigmas[101]))
    assert float(sampling.sigma(torch.tensor(100.75))) == pytest.approx(expected, rel=1e-6)
    assert float(sampling.sigma(torch.tensor(2000.0))) == pytest.approx(float(sampling.sigma_max))


def test_percent_to_sigma_maps_the_denoising_fraction():
    sampling = ModelSamplingDiscrete()
    assert sampling.percent_to_sigma(0.0) == 999999999.9
    assert sampling.percent_to_sigma(1.0) == 0.0
    assert sampling.percent_to_sigma(0.5) == pytest.approx(float(sampling.sigma(torch.tensor(499.5))))


def test_eps_input_scaling_and_denoised():
    sampling = ModelSamplingDiscrete("eps")
    x = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    eps = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([2.0, 0.5])
    s = sigma.reshape(2, 1, 1, 1)
    torch.testing.assert_close(sampling.calculate_input(sigma, x), x / (s**2 + 1).sqrt())
    torch.testing.assert_close(sampling.calculate_denoised(sigma, eps, x), x - eps * s)


def test_v_prediction_denoised_matches_diffusers_x0_formula():
    """In VP terms x0 = sqrt(ᾱ)·x_t - sqrt(1-ᾱ)·v (Salimans & Ho 2022); Kiln's x is x_t / sqrt(ᾱ)."""
    sampling = ModelSamplingDiscrete("v")
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              prediction_type="v_prediction", clip_sample=False)
    t = 600
    alpha_bar = scheduler.alphas_cumprod[t]
    x_vp = torch.randn(1, 4, 3, 3, generator=torch.Generator().manual_seed(2))
    v = torch.randn(1, 4, 3, 3, generator=torch.Generator().manual_seed(3))
    sigma = sampling.sigmas[t].reshape(1)
    x = x_vp / alpha_bar.sqrt()
    expected = scheduler.step(v, t, x_vp).pred_original_sample
    torch.testing.assert_close(sampling.calculate_denoised(sigma, v, x), expected, rtol=1e-4, atol=1e-5)


def test_noise_scaling_adds_sigma_noise_or_unit_variance_noise_at_max_denoise():
    sampling = ModelSamplingDiscrete()
    latent = torch.full((1, 4, 2, 2), 0.5)
    noise = torch.ones(1, 4, 2, 2)
    sigma = torch.tensor(3.0)
    torch.testing.assert_close(sampling.noise_scaling(sigma, noise, latent), latent + 3.0)
    torch.testing.assert_close(sampling.noise_scaling(sigma, noise, latent, max_denoise=True), latent + math.sqrt(10.0))
    assert sampling.inverse_noise_scaling(sigma, latent) is latent


def test_zero_terminal_snr_rescale():
    plain = ModelSamplingDiscrete()
    zsnr = ModelSamplingDiscrete(zsnr=True)
    assert float(zsnr.sigma_max) == pytest.approx(math.sqrt((1 - ZSNR_TERMINAL_ALPHA_BAR) / ZSNR_TERMINAL_ALPHA_BAR), rel=1e-5)
    assert float(zsnr.sigma_min) == pytest.approx(float(plain.sigma_min), rel=1e-4)
    reference = diffusers_sigmas(rescale_betas_zero_snr=True)
    torch.testing.assert_close(zsnr.sigmas[:-1].double(), reference[:-1], rtol=1e-4, atol=1e-6)


def test_unknown_prediction_type_is_refused():
    with pytest.raises(ValueError, match="prediction_type"):
        ModelSamplingDiscrete("flow")
