"""KSampler semantics (comfy-compat §10.4): denoise, step windows, starting noise, inpainting, callbacks."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion.sampling import pipeline, schedules
from diffusion.sampling.guidance import CFGGuider
from diffusion.sampling.model_sampling import ModelSamplingDiscrete
from diffusion.sampling.noise import prepare_noise
from diffusion.sampling.registry import get_sampler
from tests.helpers.sampling_doubles import DummyModel, conditioning, denoise

SAMPLING = ModelSamplingDiscrete()


def test_full_denoise_uses_the_whole_schedule():
    torch.testing.assert_close(pipeline.denoise_sigmas(SAMPLING, "karras", 10, 1.0),
                               schedules.calculate_sigmas(SAMPLING, "karras", 10))


def test_partial_denoise_keeps_the_tail_of_a_longer_schedule():
    sigmas = pipeline.denoise_sigmas(SAMPLING, "normal", 10, 0.4)
    longer = schedules.calculate_sigmas(SAMPLING, "normal", int(10 / 0.4))
    assert len(sigmas) == 11
    torch.testing.assert_close(sigmas, longer[-11:])


def test_zero_denoise_is_an_empty_schedule_that_returns_the_latent():
    assert len(pipeline.denoise_sigmas(SAMPLING, "normal", 10, 0.0)) == 0
    model = DummyModel()
    latent = torch.randn(1, 4, 8, 8)
    out = pipeline.sample(model, torch.randn(1, 4, 8, 8), 10, 7.0, "euler", "normal", conditioning(1), conditioning(0),
                          latent, denoise=0.0)
    assert out is latent and model.calls == []


def test_discarding_samplers_compute_steps_plus_one_and_drop_the_penultimate_sigma():
    sigmas = pipeline.model_sigmas(SAMPLING, "karras", 10, "dpm_2")
    longer = schedules.calculate_sigmas(SAMPLING, "karras", 11)
    assert len(sigmas) == 11
    torch.testing.assert_close(sigmas, torch.cat([longer[:-2], longer[-1:]]))


def test_step_window_cuts_and_optionally_forces_a_full_denoise():
    sigmas = schedules.calculate_sigmas(SAMPLING, "karras", 10)
    torch.testing.assert_close(pipeline.step_window(sigmas, 3, 7, False), sigmas[3:8])
    forced = pipeline.step_window(sigmas, 3, 7, True)
    assert float(forced[-1]) == 0.0 and float(sigmas[7]) > 0  # the caller's sigmas stay untouched
    torch.testing.assert_close(pipeline.step_window(sigmas, 0, 10000, True), sigmas)
    assert pipeline.step_window(sigmas, 10, None, False) is None


def test_sample_runs_euler_from_scaled_noise_in_model_space_and_returns_vae_space():
    model = DummyModel()
    latent = torch.zeros(1, 4, 8, 8)
    noise = prepare_noise(latent, 3)
    out = pipeline.sample(model, noise, 4, 1.0, "euler", "karras", conditioning(0.5), conditioning(0.0), latent)
    sigmas = schedules.calculate_sigmas(SAMPLING, "karras", 4)
    x = noise * math.sqrt(1 + float(sigmas[0]) ** 2)  # sigma_max: start from unit-variance noise
    context = torch.full((1, 3, 8), 0.5)
    for i in range(4):
        x0 = denoise(x, sigmas[i].reshape(1), context)
        x = x + (x - x0) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    torch.testing.assert_close(out, x / 0.18215)


def test_img2img_scales_the_latent_in_and_noises_it_by_the_first_sigma():
    model = DummyModel()
    latent = torch.full((1, 4, 8, 8), 2.0)
    noise = prepare_noise(latent, 1)
    seen = []
    pipeline.sample(model, noise, 4, 1.0, "euler", "normal", conditioning(0.0), conditioning(0.0), latent,
                    denoise=0.5, callback=lambda i, x0, x, total: seen.append(x))
    first_sigma = pipeline.denoise_sigmas(SAMPLING, "normal", 4, 0.5)[0]
    torch.testing.assert_close(seen[0], latent * 0.18215 + noise * first_sigma)


def test_callback_gets_each_step_with_x0_and_the_total():
    model = DummyModel()
    steps = []
    pipeline.sample(model, torch.randn(1, 4, 8, 8), 5, 3.0, "dpmpp_2m", "karras", conditioning(1), conditioning(0),
                    torch.zeros(1, 4, 8, 8), callback=lambda i, x0, x, total: steps.append((i, x0.shape, total)))
    assert steps == [(i, (1, 4, 8, 8), 5) for i in range(5)]


def test_an_exception_from_the_callback_stops_sampling_at_once():
    model = DummyModel()

    def interrupt(i, x0, x, total):
        if i == 1:
            raise InterruptedError("stop")

    with pytest.raises(InterruptedError):
        pipeline.sample(model, torch.randn(1, 4, 8, 8), 20, 1.0, "euler", "karras", conditioning(1), conditioning(0),
                        torch.zeros(1, 4, 8, 8), callback=interrupt)
    assert len(model.calls) == 2


def test_inpainting_keeps_the_unmasked_latent_and_blends_each_step():
    model = DummyModel()
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(8))
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 4:] = 1.0  # regenerate the right half
    noise = prepare_noise(latent, 2)
    out = pipeline.sample(model, noise, 6, 1.0, "euler", "karras", conditioning(1), conditioning(0), latent,
                          denoise=1.0, noise_mask=mask)
    torch.testing.assert_close(out[..., :4], latent[..., :4], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out[..., 4:], latent[..., 4:])
    sigma0 = float(schedules.calculate_sigmas(SAMPLING, "karras", 6)[0])
    first_input = model.calls[0]["x"]
    scaled = latent * 0.18215
    torch.testing.assert_close(first_input[..., :4], scaled[..., :4] + noise[..., :4] * sigma0)


def test_ddim_renoises_the_inpainting_reference_with_seed_plus_one():
    latent = torch.randn(1, 4, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 4:] = 1.0
    model = DummyModel()
    noise = prepare_noise(latent, 5)
    pipeline.sample(model, noise, 3, 1.0, "ddim", "karras", conditioning(1), conditioning(0), latent, noise_mask=mask,
                    seed=5)
    sigma0 = float(schedules.calculate_sigmas(SAMPLING, "karras", 3)[0])
    reference_noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(6))
    expected = latent * 0.18215 + reference_noise * sigma0
    torch.testing.assert_close(model.calls[0]["x"][..., :4], expected[..., :4])


def test_empty_latents_of_another_family_get_the_models_channel_count():
    model = DummyModel()
    fixed = pipeline.fix_empty_latent_channels(model, torch.zeros(2, 16, 8, 8))
    assert fixed.shape == (2, 4, 8, 8)
    kept = torch.ones(2, 16, 8, 8)
    assert pipeline.fix_empty_latent_channels(model, kept) is kept


def test_sample_with_guider_equals_ksampler_sample():
    latent = torch.zeros(1, 4, 8, 8)
    noise = prepare_noise(latent, 4)
    direct = pipeline.sample(DummyModel(), noise, 5, 4.0, "dpmpp_2m", "normal", conditioning(1), conditioning(-1), latent)
    model = DummyModel()
    sigmas = schedules.calculate_sigmas(model.model_sampling, "normal", 5)
    guided = pipeline.sample_with_guider(CFGGuider(model, conditioning(1), conditioning(-1), 4.0), noise, latent,
                                         get_sampler("dpmpp_2m"), sigmas)
    torch.testing.assert_close(direct, guided)
    via_method = CFGGuider(DummyModel(), conditioning(1), conditioning(-1), 4.0).sample(
        noise, latent, get_sampler("dpmpp_2m"), sigmas)
    torch.testing.assert_close(direct, via_method)


def test_samplers_that_need_the_models_noise_levels_get_them_from_the_pipeline():
    out = pipeline.sample(DummyModel(), prepare_noise(torch.zeros(1, 4, 8, 8), 1), 6, 3.0, "sa_solver", "karras",
                          conditioning(1), conditioning(0), torch.zeros(1, 4, 8, 8), seed=1)
    assert torch.isfinite(out).all()
