"""RES multistep: the second-order exponential multistep integrator of Zhang et al. (2023),
"Improved Order Analysis and Design of Exponential Integrator for Diffusion Models", arXiv 2308.02157.

Plain, ancestral (eta = 1) and CFG++ forms, as ComfyUI's res_multistep family.
"""

from __future__ import annotations

import torch
from tqdm.auto import trange

from .samplers import _report, _seeded_noise_sampler, get_ancestral_step, to_d
from .samplers_cfg_pp import _capture_uncond


def _phi_1(z: torch.Tensor) -> torch.Tensor:
    return torch.expm1(z) / z


def _phi_2(z: torch.Tensor) -> torch.Tensor:
    return (_phi_1(z) - 1.0) / z


@torch.no_grad()
def res_multistep(model, x, sigmas, extra_args=None, callback=None, disable=None, s_noise=1.0, noise_sampler=None,
                  eta=1.0, cfg_pp=False):
    """RES 2nd-order multistep in t = -log σ; Euler for the first step and where sigma_down is 0."""
    if cfg_pp:
        extra_args, uncond = _capture_uncond(extra_args)
    else:
        extra_args, uncond = ({} if extra_args is None else extra_args), None
    noise_sampler = _seeded_noise_sampler(x, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    t_fn = lambda sigma: torch.as_tensor(sigma).log().neg()
    old_sigma_down = None
    old_denoised = None
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        uncond_denoised = uncond[0] if cfg_pp else None
        if sigma_down == 0 or old_denoised is None:
            if cfg_pp:
                x = denoised + to_d(x, sigmas[i], uncond_denoised) * sigma_down
            else:
                x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_old, t_next, t_prev = t_fn(sigmas[i]), t_fn(old_sigma_down), t_fn(sigma_down), t_fn(sigmas[i - 1])
            h = t_next - t
            c2 = (t_prev - t_old) / h
            phi_1, phi_2 = _phi_1(-h), _phi_2(-h)
            b1 = torch.nan_to_num(phi_1 - phi_2 / c2, nan=0.0)
            b2 = torch.nan_to_num(phi_2 / c2, nan=0.0)
            if cfg_pp:
                x = x + (denoised - uncond_denoised)
                x = torch.exp(-h) * x + h * (b1 * uncond_denoised + b2 * old_denoised)
            else:
                x = torch.exp(-h) * x + h * (b1 * denoised + b2 * old_denoised)
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
        old_denoised = uncond_denoised if cfg_pp else denoised
        old_sigma_down = sigma_down
    return x


@torch.no_grad()
def sample_res_multistep(model, x, sigmas, extra_args=None, callback=None, disable=None, s_noise=1.0,
                         noise_sampler=None):
    """Deterministic RES multistep (eta 0)."""
    return res_multistep(model, x, sigmas, extra_args, callback, disable, s_noise, noise_sampler, eta=0.0)


@torch.no_grad()
def sample_res_multistep_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None, s_noise=1.0,
                                noise_sampler=None):
    """Deterministic RES multistep with CFG++ renoising."""
    return res_multistep(model, x, sigmas, extra_args, callback, disable, s_noise, noise_sampler, eta=0.0, cfg_pp=True)


@torch.no_grad()
def sample_res_multistep_ancestral(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0,
                                   s_noise=1.0, noise_sampler=None):
    """Ancestral RES multistep: steps to sigma_down, then adds sigma_up noise."""
    return res_multistep(model, x, sigmas, extra_args, callback, disable, s_noise, noise_sampler, eta=eta)


@torch.no_grad()
def sample_res_multistep_ancestral_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0,
                                          s_noise=1.0, noise_sampler=None):
    """Ancestral RES multistep with CFG++ renoising."""
    return res_multistep(model, x, sigmas, extra_args, callback, disable, s_noise, noise_sampler, eta=eta, cfg_pp=True)
