"""Every sampler against a reference on the same denoiser and the same noise, to 1e-5.

k-diffusion 0.1.1 is the reference where it has the sampler; ComfyUI's additions are checked
against diffusers (DDPM), against the linear multistep sampler (iPNDM on equal steps) or
against their defining formula written out step by step.
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from diffusers import DDPMScheduler, UniPCMultistepScheduler

from diffusion.sampling import deis, dpm_solver, er_sde, sa_solver, samplers, samplers_cfg_pp, samplers_extra, samplers_res, samplers_seeds, schedules, uni_pc
from diffusion.sampling.guidance import CFGGuider
from diffusion.sampling.model_sampling import ModelSamplingDiscrete
from diffusion.sampling.names import IMPLEMENTED_SAMPLERS, SAMPLER_NAMES, available_sampler_names
from diffusion.sampling.noise import BrownianTreeNoiseSampler, default_noise_sampler
from diffusion.sampling.registry import SAMPLER_FUNCTIONS, get_sampler
from tests.helpers.sampling_doubles import DummyModel, conditioning, denoise

SIGMAS = schedules.get_sigmas_karras(8, 0.0291675, 14.614642)
K_DIFFUSION_SAMPLERS = ["euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "dpmpp_2s_ancestral",
                        "dpmpp_sde", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m_sde"]


def noise_sampler_for(function, x):
    """A fresh copy of the same noise stream for each side of a comparison."""
    if "sde" in function.__name__:
        return BrownianTreeNoiseSampler(x, SIGMAS[SIGMAS > 0].min(), SIGMAS.max(), seed=99)
    return default_noise_sampler(x, seed=99)


def run(function, denoiser, x, sigmas, **kwargs):
    if "noise_sampler" in inspect.signature(function).parameters:
        kwargs["noise_sampler"] = noise_sampler_for(function, x)
    return function(denoiser, x, sigmas, disable=True, **kwargs)


@pytest.mark.parametrize("name", K_DIFFUSION_SAMPLERS)
def test_sampler_matches_k_diffusion(name, kdiff, start_noise, denoiser):
    ours = run(getattr(samplers, f"sample_{name}"), denoiser, start_noise * SIGMAS[0], SIGMAS)
    reference = run(getattr(kdiff, f"sample_{name}"), type(denoiser)(), start_noise * SIGMAS[0], SIGMAS)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


def test_dpmpp_2m_sde_heun_variant_matches_k_diffusion(kdiff, start_noise, denoiser):
    x = start_noise * SIGMAS[0]
    ours = run(samplers.sample_dpmpp_2m_sde, denoiser, x, SIGMAS, solver_type="heun")
    reference = run(kdiff.sample_dpmpp_2m_sde, type(denoiser)(), x, SIGMAS, solver_type="heun")
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


def test_churn_variants_match_k_diffusion(kdiff, start_noise, denoiser):
    """With s_churn every step raises sigma by gamma = 1/8 using global-RNG noise, in both implementations."""
    x = start_noise * SIGMAS[0]
    for name in ("euler", "heun", "dpm_2"):
        torch.manual_seed(5)
        ours = getattr(samplers, f"sample_{name}")(denoiser, x, SIGMAS, disable=True, s_churn=1.0)
        torch.manual_seed(5)
        reference = getattr(kdiff, f"sample_{name}")(type(denoiser)(), x, SIGMAS, disable=True, s_churn=1.0)
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


def test_lms_matches_k_diffusion_and_ends_on_the_x0_prediction(kdiff, start_noise, denoiser):
    x = start_noise * SIGMAS[0]
    no_final = SIGMAS[:-1]
    torch.testing.assert_close(samplers.sample_lms(denoiser, x, no_final, disable=True),
                               kdiff.sample_lms(type(denoiser)(), x, no_final, disable=True), rtol=1e-5, atol=1e-5)
    before_last = samplers.sample_lms(denoiser, x, SIGMAS[:-1], disable=True)
    last = samplers.sample_lms(denoiser, x, SIGMAS, disable=True)
    expected = type(denoiser)()(before_last, SIGMAS[-2].reshape(1).expand(2))
    torch.testing.assert_close(last, expected, rtol=1e-5, atol=1e-5)


def test_dpm_fast_and_adaptive_match_k_diffusion(kdiff, start_noise, denoiser):
    x = start_noise * SIGMAS[0]
    lo, hi = SIGMAS[-2], SIGMAS[0]
    torch.testing.assert_close(dpm_solver.sample_dpm_fast(denoiser, x, SIGMAS, disable=True),
                               kdiff.sample_dpm_fast(type(denoiser)(), x, lo, hi, len(SIGMAS) - 1, disable=True),
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dpm_solver.sample_dpm_adaptive(denoiser, x, SIGMAS, disable=True),
                               kdiff.sample_dpm_adaptive(type(denoiser)(), x, lo, hi, disable=True),
                               rtol=1e-5, atol=1e-5)


def test_ddpm_step_matches_diffusers_ddpm_scheduler(start_noise, denoiser):
    """One ancestral step between training timesteps 999 -> 979 is diffusers' DDPM posterior mean plus noise."""
    sampling = ModelSamplingDiscrete()
    t, t_prev = 999, 979
    sigmas = torch.stack([sampling.sigmas[t], sampling.sigmas[t_prev]])
    x = start_noise * sigmas[0]
    fresh = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    ours = samplers_extra.sample_ddpm(denoiser, x, sigmas, disable=True, noise_sampler=lambda s, s_next: fresh)

    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              variance_type="fixed_small")
    scheduler.set_timesteps(timesteps=[t, t_prev])
    eps = (x - type(denoiser)()(x, sigmas[0].expand(2))) / sigmas[0]
    x_vp = x * scheduler.alphas_cumprod[t].sqrt()
    variance = scheduler._get_variance(t, t_prev)
    scheduler._get_variance = lambda *args, **kwargs: torch.tensor(0.0)  # the mean alone; the noise is ours
    mean = scheduler.step(eps, t, x_vp).prev_sample
    expected = (mean + variance.sqrt() * fresh) / scheduler.alphas_cumprod[t_prev].sqrt()
    torch.testing.assert_close(ours, expected.float(), rtol=1e-5, atol=1e-5)


def test_lcm_jumps_to_x0_and_renoises_to_the_next_sigma(start_noise, denoiser):
    x = start_noise * SIGMAS[0]
    draws = [torch.randn(x.shape, generator=torch.Generator().manual_seed(i)) for i in range(len(SIGMAS))]
    stream = iter(draws)
    ours = samplers_extra.sample_lcm(denoiser, x, SIGMAS, disable=True, noise_sampler=lambda s, sn: next(stream))
    reference = type(denoiser)()
    expected = x
    for i in range(len(SIGMAS) - 1):
        expected = reference(expected, SIGMAS[i].expand(2))
        if SIGMAS[i + 1] > 0:
            expected = expected + SIGMAS[i + 1] * draws[i]
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-6)


def test_ipndm_equals_linear_multistep_on_equal_steps(start_noise, denoiser):
    """On equally spaced sigmas Adams-Bashforth's fixed weights are the exact LMS coefficients."""
    sigmas = torch.linspace(10.0, 1.0, 9)
    x = start_noise * sigmas[0]
    torch.testing.assert_close(samplers_extra.sample_ipndm(denoiser, x, sigmas, disable=True),
                               samplers.sample_lms(type(denoiser)(), x, sigmas, disable=True), rtol=1e-5, atol=1e-5)
    assert torch.equal(samplers_extra.sample_ipndm(denoiser, x, torch.tensor([10.0, 0.0]), disable=True),
                       type(denoiser)()(x, torch.tensor([10.0, 10.0])))


def test_heunpp2_blends_slopes_with_sigma_weights(start_noise, denoiser):
    sigmas = torch.tensor([8.0, 4.0, 2.0, 0.0])
    x = start_noise * sigmas[0]
    ours = samplers_extra.sample_heunpp2(denoiser, x, sigmas, disable=True)
    model = type(denoiser)()
    slope = lambda x_, s: (x_ - model(x_, s.expand(2))) / s
    # step 0: three slopes, weights sigma_{i+1}/(3·sigma_0) and sigma_{i+2}/(3·sigma_0)
    d1 = slope(x, sigmas[0])
    x2 = x + d1 * (sigmas[1] - sigmas[0])
    d2 = slope(x2, sigmas[1])
    d3 = slope(x2 + d2 * (sigmas[2] - sigmas[1]), sigmas[2])
    w2, w3 = 4.0 / 24.0, 2.0 / 24.0
    x = x + ((1 - w2 - w3) * d1 + w2 * d2 + w3 * d3) * (sigmas[1] - sigmas[0])
    # step 1: two slopes, weight sigma_{i+1}/(2·sigma_0)
    d1 = slope(x, sigmas[1])
    x2 = x + d1 * (sigmas[2] - sigmas[1])
    d2 = slope(x2, sigmas[2])
    x = x + ((1 - 2.0 / 16.0) * d1 + 2.0 / 16.0 * d2) * (sigmas[2] - sigmas[1])
    # step 2: Euler to 0
    x = x + slope(x, sigmas[2]) * (sigmas[3] - sigmas[2])
    torch.testing.assert_close(ours, x, rtol=1e-5, atol=1e-5)


def test_callback_reports_every_step_with_the_x0_prediction(start_noise, denoiser):
    seen = []
    samplers.sample_dpmpp_2m(denoiser, start_noise * SIGMAS[0], SIGMAS, disable=True, callback=seen.append)
    assert [info["i"] for info in seen] == list(range(len(SIGMAS) - 1))
    assert all(set(info) >= {"x", "i", "sigma", "sigma_hat", "denoised"} for info in seen)


def test_sampler_names_follow_comfyui_and_only_implemented_ones_are_offered():
    assert len(SAMPLER_NAMES) == 42 and SAMPLER_NAMES[0] == "euler" and SAMPLER_NAMES[-1] == "uni_pc_bh2"
    assert set(SAMPLER_FUNCTIONS) == set(IMPLEMENTED_SAMPLERS)
    offered = available_sampler_names()
    assert offered == [name for name in SAMPLER_NAMES if name in IMPLEMENTED_SAMPLERS]
    assert offered == list(SAMPLER_NAMES)  # all 42
    with pytest.raises(ValueError, match="not available"):
        get_sampler("euler_but_faster")


def guided(cfg: float, negative_value: float) -> CFGGuider:
    guider = CFGGuider(DummyModel(), conditioning(1.0), conditioning(negative_value), cfg)
    guider.prepare((2, 4, 8, 8), "cpu")
    return guider


@pytest.mark.parametrize("name", sorted(IMPLEMENTED_SAMPLERS))
def test_every_registered_sampler_runs_seeded_and_reproducibly(name, start_noise):
    sampler = get_sampler(name)
    ms = ModelSamplingDiscrete()
    first = sampler(guided(4.0, -1.0), start_noise * SIGMAS[0], SIGMAS, extra_args={"seed": 4}, disable=True,
                    model_sampling=ms)
    second = sampler(guided(4.0, -1.0), start_noise * SIGMAS[0], SIGMAS, extra_args={"seed": 4}, disable=True,
                     model_sampling=ms)
    assert torch.isfinite(first).all()
    torch.testing.assert_close(first, second)


@pytest.mark.parametrize("plain, cfg_pp", [("euler", "euler_cfg_pp"), ("euler_ancestral", "euler_ancestral_cfg_pp"),
                                           ("dpmpp_2m", "dpmpp_2m_cfg_pp"),
                                           ("dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp"),
                                           ("res_multistep", "res_multistep_cfg_pp"),
                                           ("res_multistep_ancestral", "res_multistep_ancestral_cfg_pp"),
                                           ("gradient_estimation", "gradient_estimation_cfg_pp")])
def test_cfg_pp_equals_the_plain_sampler_when_the_unconditional_prediction_agrees(plain, cfg_pp, start_noise):
    x = start_noise * SIGMAS[0]
    args = {"seed": 4}
    ours = get_sampler(cfg_pp)(guided(6.0, 1.0), x, SIGMAS, extra_args=dict(args), disable=True)
    reference = get_sampler(plain)(guided(6.0, 1.0), x, SIGMAS, extra_args=dict(args), disable=True)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


def test_euler_cfg_pp_renoises_with_the_unconditional_prediction(start_noise):
    sigmas = torch.tensor([5.0, 2.0])
    x = start_noise * sigmas[0]
    ours = samplers_cfg_pp.sample_euler_cfg_pp(guided(3.0, -1.0), x, sigmas, disable=True)
    sigma = sigmas[0].expand(2)
    cond = denoise(x, sigma, torch.full((2, 3, 8), 1.0))
    uncond = denoise(x, sigma, torch.full((2, 3, 8), -1.0))
    guided_x0 = uncond + (cond - uncond) * 3.0
    torch.testing.assert_close(ours, guided_x0 + (x - uncond) / 5.0 * 2.0)


def test_cfg_pp_runs_the_unconditional_pass_even_at_cfg_one(start_noise):
    guider = guided(1.0, -1.0)
    samplers_cfg_pp.sample_euler_cfg_pp(guider, start_noise, torch.tensor([2.0, 0.0]), disable=True)
    assert guider.model.calls[0]["x"].shape[0] == 4


@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("steps", [3, 4, 8])
def test_uni_pc_matches_diffusers_unipc_multistep(variant, steps, start_noise, denoiser):
    """Diffusers' UniPC (data prediction, order 3, lower order at the end) driven along the same sigmas.

    Kiln's UniPC stops at sigma 0.001 instead of 0 and returns x there in the sigma scaling; diffusers
    works in the variance-preserving scaling x / sqrt(1 + sigma²).
    """
    sigmas = schedules.get_sigmas_karras(steps, 0.0291675, 14.614642)
    x = start_noise * sigmas[0]
    ours = uni_pc.sample_uni_pc(denoiser, x, sigmas, disable=True, variant=variant)

    scheduler = UniPCMultistepScheduler(solver_order=3, prediction_type="sample", solver_type=variant,
                                        lower_order_final=True, predict_x0=True)
    scheduler.set_timesteps(steps)
    stop_early = sigmas.clone()
    stop_early[-1] = uni_pc.FINAL_SIGMA
    scheduler.sigmas = stop_early
    scheduler.set_begin_index(0)
    model = type(denoiser)()
    vp_scale = lambda sigma: 1 / (1 + sigma**2).sqrt()
    x_vp = x * vp_scale(sigmas[0])
    for i in range(steps):
        x0 = model(x_vp / vp_scale(stop_early[i]), stop_early[i].expand(2))
        x_vp = scheduler.step(x0, scheduler.timesteps[i], x_vp).prev_sample
    torch.testing.assert_close(ours, x_vp / vp_scale(stop_early[-1]), rtol=1e-5, atol=1e-5)


def test_uni_pc_leaves_the_callers_sigmas_alone(denoiser, start_noise):
    sigmas = torch.tensor([10.0, 3.0, 1.0, 0.0])
    uni_pc.sample_uni_pc(denoiser, start_noise * 10, sigmas, disable=True)
    assert float(sigmas[-1]) == 0.0


def test_res_multistep_is_exact_for_a_constant_x0():
    """With D(x, σ) = c the probability-flow ODE solves to c + (x - c)·σ'/σ; the exponential integrator is exact."""
    target = torch.full((1, 4, 2, 2), 0.7)
    constant = lambda x, sigma, **kwargs: target.expand_as(x)
    x = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(1)) * 10
    sigmas = torch.tensor([10.0, 4.0, 1.5, 0.5, 0.1])
    out = samplers_res.sample_res_multistep(constant, x, sigmas, disable=True)
    torch.testing.assert_close(out, target + (x - target) * 0.1 / 10.0, rtol=1e-5, atol=1e-5)


def test_res_multistep_second_step_uses_the_phi_weights(start_noise, denoiser):
    """Step 2 of 2: x' = e^{-h}·x + h·((φ1 + φ2/r)·D_1 - φ2/r·D_0) with r = h_previous / h, φ_k at -h."""
    sigmas = torch.tensor([8.0, 3.0, 1.0])
    x = start_noise * sigmas[0]
    ours = samplers_res.sample_res_multistep(denoiser, x, sigmas, disable=True)
    model = type(denoiser)()
    d0 = model(x, sigmas[0].expand(2))
    x1 = x + (x - d0) / sigmas[0] * (sigmas[1] - sigmas[0])
    d1 = model(x1, sigmas[1].expand(2))
    h = math.log(3.0 / 1.0)
    r = math.log(8.0 / 3.0) / h
    phi_1 = (math.exp(-h) - 1) / -h
    phi_2 = (phi_1 - 1) / -h
    expected = math.exp(-h) * x1 + h * ((phi_1 + phi_2 / r) * d1 - phi_2 / r * d0)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_seeds_2_without_noise_is_dpm_solver_pp_2s(kdiff, start_noise, denoiser):
    x = start_noise * SIGMAS[0]
    ours = samplers_seeds.sample_seeds_2(denoiser, x, SIGMAS, disable=True, eta=0.0)
    reference = kdiff.sample_dpmpp_2s_ancestral(type(denoiser)(), x, SIGMAS, disable=True, eta=0.0)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sampler", [samplers_seeds.sample_seeds_2, samplers_seeds.sample_seeds_3])
def test_seeds_without_noise_is_exact_for_a_constant_x0(sampler):
    target = torch.full((1, 4, 2, 2), -0.3)
    constant = lambda x, sigma, **kwargs: target.expand_as(x)
    x = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(2)) * 10
    sigmas = torch.tensor([10.0, 3.0, 0.2])
    out = sampler(constant, x, sigmas, disable=True, eta=0.0)
    torch.testing.assert_close(out, target + (x - target) * 0.2 / 10.0, rtol=1e-5, atol=1e-5)


def test_seeds_2_noise_keeps_the_marginal_variance():
    """For D = 0 one SEEDS-2 step maps x ~ N(0, σ_s²) to N(0, σ_t²): decay² + injected variance add up."""
    zero = lambda x, sigma, **kwargs: torch.zeros_like(x)
    x = torch.randn(1, 1, 256, 256, generator=torch.Generator().manual_seed(3)) * 5.0
    out = samplers_seeds.sample_seeds_2(zero, x, torch.tensor([5.0, 2.0]), disable=True,
                                        noise_sampler=default_noise_sampler(x, seed=4))
    assert abs(float(out.std()) - 2.0) < 0.03


def test_gradient_estimation_adds_the_derivative_change(start_noise, denoiser):
    sigmas = torch.tensor([6.0, 2.0, 1.0, 0.0])
    x = start_noise * sigmas[0]
    ours = samplers_seeds.sample_gradient_estimation(denoiser, x, sigmas, disable=True)
    model = type(denoiser)()
    d0 = (x - model(x, sigmas[0].expand(2))) / 6.0
    x = x + d0 * -4.0
    d1 = (x - model(x, sigmas[1].expand(2))) / 2.0
    x = x + d1 * -1.0 + (d1 - d0) * -1.0
    torch.testing.assert_close(ours, model(x, sigmas[2].expand(2)), rtol=1e-5, atol=1e-5)


def test_er_sde_first_stage_without_noise_and_a_linear_scaler_is_euler(start_noise, denoiser):
    x = start_noise * SIGMAS[0]
    ours = er_sde.sample_er_sde(denoiser, x, SIGMAS, disable=True, s_noise=0.0, noise_scaler=lambda lam: lam,
                                max_stage=1)
    reference = samplers.sample_euler(type(denoiser)(), x, SIGMAS, disable=True)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)


def test_er_sde_noise_keeps_the_marginal_variance():
    zero = lambda x, sigma, **kwargs: torch.zeros_like(x)
    x = torch.randn(1, 1, 256, 256, generator=torch.Generator().manual_seed(3)) * 5.0
    out = er_sde.sample_er_sde(zero, x, torch.tensor([5.0, 2.0]), disable=True,
                               noise_sampler=default_noise_sampler(x, seed=4))
    assert abs(float(out.std()) - 2.0) < 0.03


def test_er_sde_higher_stages_integrate_the_scaler_numerically(start_noise, denoiser):
    """Stage 2 adds (Δλ + s(λ_t)·∫ dλ/s(λ)) times the divided difference of x0, by a 200-point Riemann sum."""
    sigmas = torch.tensor([6.0, 3.0, 1.0])
    x = start_noise * sigmas[0]
    ours = er_sde.sample_er_sde(denoiser, x, sigmas, disable=True, s_noise=0.0, max_stage=2)
    model = type(denoiser)()
    scaler = er_sde.default_noise_scaler
    d0 = model(x, sigmas[0].expand(2))
    r = scaler(sigmas[1]) / scaler(sigmas[0])
    x = r * x + (1 - r) * d0
    d1 = model(x, sigmas[1].expand(2))
    r = scaler(sigmas[2]) / scaler(sigmas[1])
    step = (3.0 - 1.0) / 200
    integral = sum(step / float(scaler(torch.tensor(1.0 + k * step))) for k in range(200))
    x = r * x + (1 - r) * d1 + (-2.0 + integral * scaler(sigmas[2])) * (d1 - d0) / (3.0 - 6.0)
    torch.testing.assert_close(ours, x, rtol=1e-4, atol=1e-4)


def test_ipndm_v_reduces_to_ipndm_on_equal_steps_up_to_third_order(start_noise, denoiser):
    sigmas = torch.linspace(10.0, 1.0, 9)
    x = start_noise * sigmas[0]
    torch.testing.assert_close(samplers_extra.sample_ipndm_v(denoiser, x, sigmas, disable=True, max_order=3),
                               samplers_extra.sample_ipndm(type(denoiser)(), x, sigmas, disable=True, max_order=3),
                               rtol=1e-5, atol=1e-5)


def test_ipndm_v_second_order_is_variable_step_adams_bashforth(start_noise, denoiser):
    x = start_noise * SIGMAS[0]
    no_final = SIGMAS[:-1]
    torch.testing.assert_close(samplers_extra.sample_ipndm_v(denoiser, x, no_final, disable=True, max_order=2),
                               samplers.sample_lms(type(denoiser)(), x, no_final, disable=True, order=2),
                               rtol=1e-5, atol=1e-5)


def test_ipndm_v_fourth_order_weights_follow_the_published_formula():
    """On equal steps the weights are 57/24, -65/24, 43/24, -11/24 (iPNDM-v, not AB4's 55/24 ...)."""
    from diffusion.sampling.samplers_extra import _ipndm_v_weights

    uniform = _ipndm_v_weights([5.0, 4.0, 3.0, 2.0, 1.0], 4)
    assert uniform == pytest.approx([57 / 24, -65 / 24, 43 / 24, -11 / 24])
    # The published oldest weight uses h_{n-1}/h_{n-2} where h_{n-2}/h_{n-3} would make the weights sum
    # to one; Kiln keeps it, for the same images as ComfyUI. On equal steps the two agree.
    h = [-2.5, -2.5, -1.5, -3.0]  # h_n, h_n-1, h_n-2, h_n-3 of the steps below
    weights = _ipndm_v_weights([9.0, 6.0, 4.5, 2.0, -0.5], 4)
    span = h[1] * (h[1] + h[2]) / (h[2] * (h[2] + h[3]))
    assert sum(weights) - 1 == pytest.approx(-weights[3] / (span * h[1] / h[2]) * span * (h[2] / h[3] - h[1] / h[2]))


def test_deis_weights_integrate_lagrange_polynomials_against_dsigma():
    """Weights sum to the sigma step (Σ L_j = 1) and match an adaptive quadrature of L_j(t(σ)) dσ."""
    import scipy.integrate

    sigmas = torch.tensor([14.6, 8.0, 4.0, 2.0, 1.0, 0.5, 0.0])
    weights = deis.deis_weights(sigmas, 3)
    times, beta_0, beta_1 = deis.vp_times(sigmas)
    assert weights[0] == []
    for i in range(1, 5):
        assert sum(weights[i]) == pytest.approx(float(sigmas[i + 1] - sigmas[i]), rel=1e-4)
        nodes = [float(times[i - k]) for k in range(len(weights[i]))]
        for j, weight in enumerate(weights[i]):
            basis = lambda t: math.prod((t - nodes[k]) / (nodes[j] - nodes[k]) for k in range(len(nodes)) if k != j)
            density = lambda t: float(deis._dsigma_dt(torch.tensor(t, dtype=torch.float64), beta_0, beta_1))
            exact, _ = scipy.integrate.quad(lambda t: basis(t) * density(t), float(times[i]), float(times[i + 1]))
            assert weight == pytest.approx(exact, rel=1e-3, abs=1e-4)


def test_deis_first_and_last_steps_are_euler(start_noise, denoiser):
    sigmas = torch.tensor([5.0, 0.0])
    x = start_noise * 5.0
    torch.testing.assert_close(deis.sample_deis(denoiser, x, sigmas, disable=True),
                               samplers.sample_euler(type(denoiser)(), x, sigmas, disable=True))


def test_sa_solver_weights_integrate_lagrange_polynomials_against_the_exponential_weight():
    import scipy.integrate

    lambdas = torch.tensor([-2.0, -1.2, -0.5, 0.3], dtype=torch.float64)
    lambda_s, lambda_t, sigma_next = lambdas[-1], torch.tensor(1.1, dtype=torch.float64), torch.tensor(0.4, dtype=torch.float64)
    for tau in (0.0, 1.0):
        weights = sa_solver.stochastic_adams_weights(sigma_next, lambdas, lambda_s, lambda_t, tau)
        tau_mul = 1 + tau**2
        nodes = lambdas.tolist()
        for j, weight in enumerate(weights.tolist()):
            basis = lambda lam: math.prod((lam - nodes[k]) / (nodes[j] - nodes[k]) for k in range(4) if k != j)
            integrand = lambda lam: tau_mul * math.exp(tau_mul * (lam - 1.1)) * basis(lam)
            exact, _ = scipy.integrate.quad(integrand, float(lambda_s), 1.1)
            assert weight == pytest.approx(float(sigma_next * lambda_t.exp()) * exact, rel=1e-8, abs=1e-10)


def test_sa_solver_without_noise_is_exact_for_a_constant_x0():
    target = torch.full((1, 4, 2, 2), 0.25)
    constant = lambda x, sigma, **kwargs: target.expand_as(x)
    x = torch.randn(1, 4, 2, 2, generator=torch.Generator().manual_seed(5)) * 10
    sigmas = torch.tensor([10.0, 5.0, 2.5, 1.0, 0.4, 0.1])
    for sampler in (sa_solver.sample_sa_solver, sa_solver.sample_sa_solver_pece):
        out = sampler(constant, x, sigmas, disable=True, tau_func=lambda sigma: 0.0)
        torch.testing.assert_close(out, target + (x - target) * 0.1 / 10.0, rtol=1e-5, atol=1e-5)


def test_sa_solver_noise_keeps_the_marginal_variance():
    zero = lambda x, sigma, **kwargs: torch.zeros_like(x)
    x = torch.randn(1, 1, 256, 256, generator=torch.Generator().manual_seed(3)) * 5.0
    out = sa_solver.sample_sa_solver(zero, x, torch.tensor([5.0, 2.0, 1.0]), disable=True,
                                     tau_func=lambda sigma: 1.0, noise_sampler=default_noise_sampler(x, seed=4))
    assert abs(float(out.std()) - 1.0) < 0.03


def test_sa_solver_default_stochasticity_spans_20_to_80_percent_of_the_model():
    ms = ModelSamplingDiscrete()
    tau = sa_solver.tau_interval(ms.percent_to_sigma(0.2), ms.percent_to_sigma(0.8))
    assert tau(ms.percent_to_sigma(0.5)) == 1.0
    assert tau(ms.percent_to_sigma(0.1)) == 0.0 and tau(ms.percent_to_sigma(0.9)) == 0.0
    with pytest.raises(ValueError, match="model_sampling"):
        sa_solver.sample_sa_solver(lambda x, s: x, torch.zeros(1, 1, 2, 2), torch.tensor([1.0, 0.0]), disable=True)
