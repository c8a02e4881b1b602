"""SEEDS-2/3 (Gonzalez et al. 2023, "SEEDS: Exponential SDE Solvers for Fast High-Quality Sampling
from Diffusion Models", arXiv 2305.14267) and the gradient-estimation sampler (Permenter & Yuan 2024,
"Interpreting and Improving Diffusion Models from an Optimization Perspective").

SEEDS works in the half log-SNR λ = -log σ of the variance-exploding sigmas used here; eta = 0
makes it deterministic (SEEDS-2 is then DPM-Solver++(2S)).
"""

from __future__ import annotations

import torch
from tqdm.auto import trange

from .samplers import _report, _seeded_noise_sampler, to_d
from .samplers_cfg_pp import _capture_uncond


def _h_phi_1(h: torch.Tensor) -> torch.Tensor:
    """h·φ1(h) = e^h - 1."""
    return torch.expm1(h)


def _h_phi_2(h: torch.Tensor) -> torch.Tensor:
    """h·φ2(h) = (e^h - 1 - h) / h."""
    return (torch.expm1(h) - h) / h


def _continue_noise(noise: torch.Tensor, segment: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
    """Carry correlated SDE noise over one more λ-segment: decay the old part, add the new variance."""
    return noise * segment.exp() + segment.mul(2).expm1().neg().sqrt() * fresh


@torch.no_grad()
def sample_seeds_2(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0,
                   noise_sampler=None, r=0.5, solver_type="phi_1"):
    """SEEDS-2: two-stage exponential SDE solver in data prediction (Gonzalez et al. 2023)."""
    if solver_type not in {"phi_1", "phi_2"}:
        raise ValueError("solver_type must be 'phi_1' or 'phi_2'")
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = _seeded_noise_sampler(x, extra_args, noise_sampler)
    inject_noise = eta > 0 and s_noise > 0
    s_in = x.new_ones([x.shape[0]])
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        lambda_s, lambda_t = -sigmas[i].log(), -sigmas[i + 1].log()
        h = lambda_t - lambda_s
        h_eta = h * (eta + 1)
        sigma_1 = (-torch.lerp(lambda_s, lambda_t, r)).exp()
        x_2 = sigma_1 / sigmas[i] * (-r * h * eta).exp() * x - _h_phi_1(-r * h_eta) * denoised
        if inject_noise:
            noise = (-2 * r * h * eta).expm1().neg().sqrt() * noise_sampler(sigmas[i], sigma_1)
            x_2 = x_2 + noise * sigma_1 * s_noise
        denoised_2 = model(x_2, sigma_1 * s_in, **extra_args)
        decay = sigmas[i + 1] / sigmas[i] * (-h * eta).exp()
        if solver_type == "phi_1":
            x = decay * x - _h_phi_1(-h_eta) * torch.lerp(denoised, denoised_2, 1 / (2 * r))
        else:
            b2 = _h_phi_2(-h_eta) / r
            x = decay * x - ((_h_phi_1(-h_eta) - b2) * denoised + b2 * denoised_2)
        if inject_noise:
            noise = _continue_noise(noise, (r - 1) * h * eta, noise_sampler(sigma_1, sigmas[i + 1]))
            x = x + noise * sigmas[i + 1] * s_noise
    return x


@torch.no_grad()
def sample_seeds_3(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0,
                   noise_sampler=None, r_1=1.0 / 3, r_2=2.0 / 3):
    """SEEDS-3: three-stage exponential SDE solver in data prediction (Gonzalez et al. 2023)."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = _seeded_noise_sampler(x, extra_args, noise_sampler)
    inject_noise = eta > 0 and s_noise > 0
    s_in = x.new_ones([x.shape[0]])
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        lambda_s, lambda_t = -sigmas[i].log(), -sigmas[i + 1].log()
        h = lambda_t - lambda_s
        h_eta = h * (eta + 1)
        sigma_1 = (-torch.lerp(lambda_s, lambda_t, r_1)).exp()
        sigma_2 = (-torch.lerp(lambda_s, lambda_t, r_2)).exp()
        x_2 = sigma_1 / sigmas[i] * (-r_1 * h * eta).exp() * x - _h_phi_1(-r_1 * h_eta) * denoised
        if inject_noise:
            noise = (-2 * r_1 * h * eta).expm1().neg().sqrt() * noise_sampler(sigmas[i], sigma_1)
            x_2 = x_2 + noise * sigma_1 * s_noise
        denoised_2 = model(x_2, sigma_1 * s_in, **extra_args)
        a3_2 = r_2 / r_1 * _h_phi_2(-r_2 * h_eta)
        a3_1 = _h_phi_1(-r_2 * h_eta) - a3_2
        x_3 = sigma_2 / sigmas[i] * (-r_2 * h * eta).exp() * x - (a3_1 * denoised + a3_2 * denoised_2)
        if inject_noise:
            noise = _continue_noise(noise, (r_1 - r_2) * h * eta, noise_sampler(sigma_1, sigma_2))
            x_3 = x_3 + noise * sigma_2 * s_noise
        denoised_3 = model(x_3, sigma_2 * s_in, **extra_args)
        b3 = _h_phi_2(-h_eta) / r_2
        b1 = _h_phi_1(-h_eta) - b3
        x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x - (b1 * denoised + b3 * denoised_3)
        if inject_noise:
            noise = _continue_noise(noise, (r_2 - 1) * h * eta, noise_sampler(sigma_2, sigmas[i + 1]))
            x = x + noise * sigmas[i + 1] * s_noise
    return x


@torch.no_grad()
def sample_gradient_estimation(model, x, sigmas, extra_args=None, callback=None, disable=None, ge_gamma=2.0,
                               cfg_pp=False):
    """Gradient estimation (Permenter & Yuan 2024): Euler plus (γ-1)·(d - d_previous)·dt; last step returns x0."""
    if cfg_pp:
        extra_args, uncond = _capture_uncond(extra_args)
    else:
        extra_args, uncond = ({} if extra_args is None else extra_args), None
    s_in = x.new_ones([x.shape[0]])
    old_d = None
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        d = to_d(x, sigmas[i], uncond[0] if cfg_pp else denoised)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            x = denoised + d * sigmas[i + 1] if cfg_pp else x + d * dt
            if old_d is not None:
                x = x + (ge_gamma - 1) * (d - old_d) * dt
        old_d = d
    return x


@torch.no_grad()
def sample_gradient_estimation_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None, ge_gamma=2.0):
    """Gradient estimation with CFG++ renoising."""
    return sample_gradient_estimation(model, x, sigmas, extra_args, callback, disable, ge_gamma, cfg_pp=True)
