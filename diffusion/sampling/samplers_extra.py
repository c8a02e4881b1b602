"""Samplers ComfyUI adds to k-diffusion's set: Heun++, DDPM, LCM and iPNDM, in the same signature."""

from __future__ import annotations

import torch
from tqdm.auto import trange

from .samplers import _churn, _report, _seeded_noise_sampler, to_d


@torch.no_grad()
def sample_heunpp2(model, x, sigmas, extra_args=None, callback=None, disable=None,
                   s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0):
    """Heun++ (sd-webui-samplers-scheduler): up to three σ-weighted slopes per step, Euler on the last step."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    s_end = sigmas[-1]
    for i in trange(len(sigmas) - 1, disable=disable):
        gamma = _churn(sigmas[i], len(sigmas) - 1, s_churn, s_tmin, s_tmax)
        sigma_hat = sigmas[i] * (gamma + 1)
        if gamma > 0:
            x = x + torch.randn_like(x) * s_noise * (sigma_hat**2 - sigmas[i] ** 2) ** 0.5
        denoised = model(x, sigma_hat * s_in, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        _report(callback, x, i, sigmas[i], sigma_hat, denoised)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == s_end:
            x = x + d * dt
            continue
        x_2 = x + d * dt
        d_2 = to_d(x_2, sigmas[i + 1], model(x_2, sigmas[i + 1] * s_in, **extra_args))
        if sigmas[i + 2] == s_end:
            weight_2 = sigmas[i + 1] / (2 * sigmas[0])
            x = x + (d * (1 - weight_2) + d_2 * weight_2) * dt
            continue
        x_3 = x_2 + d_2 * (sigmas[i + 2] - sigmas[i + 1])
        d_3 = to_d(x_3, sigmas[i + 2], model(x_3, sigmas[i + 2] * s_in, **extra_args))
        weight_2 = sigmas[i + 1] / (3 * sigmas[0])
        weight_3 = sigmas[i + 2] / (3 * sigmas[0])
        x = x + ((1 - weight_2 - weight_3) * d + weight_2 * d_2 + weight_3 * d_3) * dt
    return x


def ddpm_posterior_step(x_vp: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor, eps: torch.Tensor,
                        noise_sampler) -> torch.Tensor:
    """One ancestral DDPM step in VP space (Ho et al. 2020, eq. 11 with the fixed-small variance)."""
    alpha_bar = 1 / (sigma * sigma + 1)
    alpha_bar_next = 1 / (sigma_next * sigma_next + 1)
    alpha = alpha_bar / alpha_bar_next
    mean = (1.0 / alpha).sqrt() * (x_vp - (1 - alpha) * eps / (1 - alpha_bar).sqrt())
    if sigma_next > 0:
        variance = (1 - alpha) * (1.0 - alpha_bar_next) / (1.0 - alpha_bar)
        mean = mean + variance.sqrt() * noise_sampler(sigma, sigma_next)
    return mean


@torch.no_grad()
def sample_ddpm(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
    """Ancestral DDPM sampling (Ho et al. 2020) on arbitrary sigmas, stepping in the VP scaling."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = _seeded_noise_sampler(x, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        eps = (x - denoised) / sigmas[i]
        x = ddpm_posterior_step(x / torch.sqrt(1.0 + sigmas[i] ** 2.0), sigmas[i], sigmas[i + 1], eps, noise_sampler)
        if sigmas[i + 1] != 0:
            x = x * torch.sqrt(1.0 + sigmas[i + 1] ** 2.0)
    return x


@torch.no_grad()
def sample_lcm(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
    """Latent Consistency Model multistep sampling (Luo et al. 2023): jump to x0, re-noise to the next sigma."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = _seeded_noise_sampler(x, extra_args, noise_sampler)
    s_in = x.new_ones([x.shape[0]])
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise_sampler(sigmas[i], sigmas[i + 1])
    return x


# Adams-Bashforth weights for equal steps, newest derivative first (orders 1-4).
_ADAMS_BASHFORTH = {
    1: (1.0,),
    2: (3 / 2, -1 / 2),
    3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}


@torch.no_grad()
def sample_ipndm(model, x, sigmas, extra_args=None, callback=None, disable=None, max_order=4):
    """Improved PNDM (Zhang & Chen 2023, DEIS paper): Adams-Bashforth in sigma with fixed weights."""
    extra_args = {} if extra_args is None else extra_args
    if not 1 <= max_order <= 4:
        raise ValueError("max_order must be 1..4")
    s_in = x.new_ones([x.shape[0]])
    history: list[torch.Tensor] = []  # previous derivatives, newest last
    for i in trange(len(sigmas) - 1, disable=disable):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * s_in, **extra_args)
        _report(callback, x, i, sigma, sigma, denoised)
        d = (x - denoised) / sigma
        order = min(max_order, i + 1)
        if sigma_next == 0:
            x_next = denoised
        else:
            derivatives = [d] + history[::-1][: order - 1]
            slope = sum(weight * derivative for weight, derivative in zip(_ADAMS_BASHFORTH[order], derivatives))
            x_next = x + (sigma_next - sigma) * slope
        history = (history + [d])[-(max_order - 1):] if max_order > 1 else []
        x = x_next
    return x


def _ipndm_v_weights(steps: list[float], order: int) -> list[float]:
    """iPNDM-v weights of the newest `order` slopes for the step from steps[-2] to steps[-1].

    The variable-step weights of Zhang & Chen's diff-solvers (Apache-2.0), which ComfyUI uses: on
    equal steps orders 2 and 3 are Adams-Bashforth's (3/2, -1/2; 23/12, -16/12, 5/12) and order 4
    gives 57/24, -65/24, 43/24, -11/24. Kept exactly as published, including the oldest order-4
    weight's h_{n-1}/h_{n-2} factor (with h_{n-2}/h_{n-3} the weights would sum to one on uneven steps).
    """
    h = [steps[-1] - steps[-2]] + [steps[-2 - k] - steps[-3 - k] for k in range(order - 1)]  # h_n, h_n-1, ...
    if order == 1:
        return [1.0]
    ratio = h[0] / h[1]
    weights = [(2 + ratio) / 2, -ratio / 2]
    if order == 2:
        return weights
    span_1 = h[0] * (h[0] + h[1]) / (h[1] * (h[1] + h[2]))
    third = (1 - h[0] / (3 * (h[0] + h[1])) * span_1) / 2
    if order == 3:
        return [weights[0] + third, weights[1] - (1 + h[1] / h[2]) * third, third * h[1] / h[2]]
    fourth = ((1 - h[0] / (3 * (h[0] + h[1]))) / 2 + (1 - h[0] / (2 * (h[0] + h[1]))) * h[0] / (6 * (h[0] + h[1] + h[2]))) \
        * (h[0] * (h[0] + h[1]) * (h[0] + h[1] + h[2])) / (h[1] * (h[1] + h[2]) * (h[1] + h[2] + h[3]))
    span_2 = h[1] * (h[1] + h[2]) / (h[2] * (h[2] + h[3]))
    return [
        weights[0] + third + fourth,
        weights[1] - (1 + h[1] / h[2]) * third - (1 + h[1] / h[2] + span_2) * fourth,
        third * h[1] / h[2] + (h[1] / h[2] + span_2 * (1 + h[2] / h[3])) * fourth,
        -fourth * span_2 * h[1] / h[2],
    ]


@torch.no_grad()
def sample_ipndm_v(model, x, sigmas, extra_args=None, callback=None, disable=None, max_order=4):
    """Improved PNDM with variable-step weights (Zhang & Chen 2023), Adams-Bashforth-like in sigma."""
    extra_args = {} if extra_args is None else extra_args
    if not 1 <= max_order <= 4:
        raise ValueError("max_order must be 1..4")
    s_in = x.new_ones([x.shape[0]])
    sigma_list = sigmas.tolist()
    history: list[torch.Tensor] = []
    for i in trange(len(sigmas) - 1, disable=disable):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * s_in, **extra_args)
        _report(callback, x, i, sigma, sigma, denoised)
        d = (x - denoised) / sigma
        order = min(max_order, i + 1)
        if sigma_next == 0:
            x_next = denoised
        else:
            weights = _ipndm_v_weights(sigma_list[max(0, i - order + 1): i + 2], order)
            derivatives = [d] + history[::-1][: order - 1]
            x_next = x + (sigma_next - sigma) * sum(w * slope for w, slope in zip(weights, derivatives))
        history = (history + [d])[-(max_order - 1):] if max_order > 1 else []
        x = x_next
    return x
