"""DEIS, the diffusion exponential integrator sampler of Zhang & Chen (2023), arXiv 2204.13902, "tAB" form.

The sigmas are mapped to the time t of the VP-SDE that EDM's defaults define (Karras et al. 2022:
sigma in [0.002, 80], epsilon_s = 1e-3). The weight of each previous slope is the integral, over
the step, of its Lagrange basis polynomial in t against dσ/dt, approximated by a 10 000-point sum
as in Zhang & Chen's diff-solvers (Apache-2.0), which ComfyUI uses.
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import trange

from .samplers import _report

EDM_SIGMA_MIN = 0.002
EDM_SIGMA_MAX = 80.0
EPSILON_S = 1e-3
INTEGRATION_POINTS = 10000


def vp_times(sigmas: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    """t for each sigma on the linear-beta VP schedule through (ε_s, σ_min) and (1, σ_max); also β0, β1."""
    beta_d = 2 * (math.log(EDM_SIGMA_MIN**2 + 1) / EPSILON_S - math.log(EDM_SIGMA_MAX**2 + 1)) / (EPSILON_S - 1)
    beta_min = math.log(EDM_SIGMA_MAX**2 + 1) - 0.5 * beta_d
    sigmas = sigmas.detach().cpu().double()
    times = ((beta_min**2 + 2 * beta_d * (sigmas**2 + 1).log()).sqrt() - beta_min) / beta_d
    return times, beta_min, beta_d + beta_min


def _dsigma_dt(times: torch.Tensor, beta_0: float, beta_1: float) -> torch.Tensor:
    """dσ/dt = -½ (d log α/dt) / sqrt(α (1 - α)) with log α = -½ t² (β1 - β0) - t β0."""
    log_alpha = -0.5 * times**2 * (beta_1 - beta_0) - times * beta_0
    alpha = log_alpha.exp()
    return -0.5 * (-times * (beta_1 - beta_0) - beta_0) / torch.sqrt(alpha * (1 - alpha))


def deis_weights(sigmas: torch.Tensor, max_order: int) -> list[list[float]]:
    """Per step i, the weights of slopes i, i-1, ... (empty for first-order steps)."""
    times, beta_0, beta_1 = vp_times(sigmas)
    weights: list[list[float]] = []
    for i in range(len(times) - 1):
        order = min(i + 1, max_order)
        if order == 1:
            weights.append([])
            continue
        taus = torch.linspace(float(times[i]), float(times[i + 1]), INTEGRATION_POINTS, dtype=torch.float64)
        dtau = (times[i + 1] - times[i]) / INTEGRATION_POINTS
        integrand = _dsigma_dt(taus, beta_0, beta_1)
        nodes = [times[i - k] for k in range(order)]
        step = []
        for j in range(order):
            basis = torch.ones_like(taus)
            for k in range(order):
                if k != j:
                    basis = basis * (taus - nodes[k]) / (nodes[j] - nodes[k])
            step.append(float(torch.sum(integrand * basis) * dtau))
        weights.append(step)
    return weights


@torch.no_grad()
def sample_deis(model, x, sigmas, extra_args=None, callback=None, disable=None, max_order=3):
    """DEIS-tAB multistep sampling (Zhang & Chen 2023) up to order max_order; Euler onto sigma 0."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    weights = deis_weights(sigmas, max_order)
    history: list[torch.Tensor] = []
    for i in trange(len(sigmas) - 1, disable=disable):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma * s_in, **extra_args)
        _report(callback, x, i, sigma, sigma, denoised)
        d = (x - denoised) / sigma
        order = 1 if sigma_next <= 0 else min(max_order, i + 1)
        if order == 1:
            x_next = x + (sigma_next - sigma) * d
        else:
            slopes = [d] + history[::-1][: order - 1]
            x_next = x + sum(w * slope for w, slope in zip(weights[i], slopes))
        history = (history + [d])[-(max_order - 1):] if max_order > 1 else []
        x = x_next
    return x
