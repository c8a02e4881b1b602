"""CFG++ samplers (Chung et al. 2024, "CFG++: Manifold-constrained Classifier Free Guidance").

CFG++ renoises with the *unconditional* prediction instead of the guided one. The samplers get
it from the guider through a post-CFG hook passed in `extra_args["model_options"]`, which also
turns off the cfg = 1 shortcut so the unconditional pass always runs; ComfyUI does the same.
"""

from __future__ import annotations

import torch
from tqdm.auto import trange

from .samplers import _report, _seeded_noise_sampler, get_ancestral_step, to_d


def _capture_uncond(extra_args: dict | None) -> tuple[dict, list]:
    """extra_args whose model_options record each step's unconditional x0 into the returned one-slot list."""
    extra_args = {} if extra_args is None else dict(extra_args)
    captured: list = [None]

    def remember_uncond(args: dict) -> torch.Tensor:
        captured[0] = args["uncond_denoised"]
        return args["denoised"]

    model_options = dict(extra_args.get("model_options") or {})
    model_options["sampler_post_cfg_function"] = list(model_options.get("sampler_post_cfg_function", [])) + [remember_uncond]
    model_options["disable_cfg1_optimization"] = True
    extra_args["model_options"] = model_options
    return extra_args, captured


@torch.no_grad()
def sample_euler_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Euler steps with CFG++: x_next = D_guided + σ_next · (x - D_uncond) / σ."""
    extra_args, uncond = _capture_uncond(extra_args)
    s_in = x.new_ones([x.shape[0]])
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        d = to_d(x, sigmas[i], uncond[0])
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        x = denoised + d * sigmas[i + 1]
    return x


@torch.no_grad()
def sample_euler_ancestral_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None,
                                  eta=1.0, s_noise=1.0, noise_sampler=None):
    """Ancestral Euler with CFG++: step to sigma_down along the unconditional slope, then add sigma_up noise."""
    extra_args, uncond = _capture_uncond(extra_args)
    noise_sampler = _seeded_noise_sampler(x, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        d = to_d(x, sigmas[i], uncond[0])
        x = denoised + d * sigma_down
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_dpmpp_2m_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """DPM-Solver++(2M) with CFG++: the exponential integrator renoises with the unconditional x0."""
    extra_args, uncond = _capture_uncond(extra_args)
    s_in = x.new_ones([x.shape[0]])
    t_fn = lambda sigma: sigma.log().neg()
    old_uncond = None
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        uncond_denoised = uncond[0]
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        t, t_next = t_fn(sigmas[i]), t_fn(sigmas[i + 1])
        h = t_next - t
        if old_uncond is None or sigmas[i + 1] == 0:
            mix = -torch.exp(-h) * uncond_denoised
        else:
            r = (t - t_fn(sigmas[i - 1])) / h
            mix = -torch.exp(-h) * uncond_denoised - torch.expm1(-h) * (1 / (2 * r)) * (denoised - old_uncond)
        x = denoised + mix + torch.exp(-h) * x
        old_uncond = uncond_denoised
    return x


@torch.no_grad()
def sample_dpmpp_2s_ancestral_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None,
                                     eta=1.0, s_noise=1.0, noise_sampler=None):
    """Ancestral DPM-Solver++(2S) with CFG++: both exponential steps start from x shifted by D_guided - D_uncond."""
    extra_args, uncond = _capture_uncond(extra_args)
    noise_sampler = _seeded_noise_sampler(x, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    sigma_fn = lambda t: t.neg().exp()
    t_fn = lambda sigma: sigma.log().neg()
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        if sigma_down == 0:
            x = denoised + to_d(x, sigmas[i], uncond[0]) * sigma_down
        else:
            t, t_next = t_fn(sigmas[i]), t_fn(torch.as_tensor(sigma_down))
            h = t_next - t
            s = t + h * 0.5
            shifted = x + (denoised - uncond[0])
            x_2 = (sigma_fn(s) / sigma_fn(t)) * shifted - (-h * 0.5).expm1() * denoised
            denoised_2 = model(x_2, sigma_fn(s) * s_in, **extra_args)
            x = (sigma_fn(t_next) / sigma_fn(t)) * shifted - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x
