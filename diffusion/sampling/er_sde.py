"""ER-SDE-Solver-3, the extended reverse-time SDE solver of Cui et al. (2023), arXiv 2309.06169.

With variance-exploding sigmas the solver's λ is σ itself and α = 1; the noise scaler
s(λ) = λ·(e^{λ^0.3} + 10) is the paper's default. Stages 2 and 3 integrate 1/s numerically
over 200 points, as the reference implementation does.
"""

from __future__ import annotations

import torch
from tqdm.auto import trange

from .samplers import _report, _seeded_noise_sampler

INTEGRATION_POINTS = 200


def default_noise_scaler(lam: torch.Tensor) -> torch.Tensor:
    return lam * ((lam**0.3).exp() + 10.0)


@torch.no_grad()
def sample_er_sde(model, x, sigmas, extra_args=None, callback=None, disable=None, s_noise=1.0, noise_sampler=None,
                  noise_scaler=None, max_stage=3):
    """ER-SDE-Solver (Cui et al. 2023), up to third order in the multistep stages."""
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = _seeded_noise_sampler(x, extra_args, noise_sampler)
    noise_scaler = default_noise_scaler if noise_scaler is None else noise_scaler
    s_in = x.new_ones([x.shape[0]])
    points = torch.arange(0, INTEGRATION_POINTS, dtype=torch.float32, device=x.device)
    lambdas = sigmas  # e^{-half log-SNR} is sigma for these sigmas
    old_denoised = None
    old_denoised_d = None
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], sigmas[i], denoised)
        stage = min(max_stage, i + 1)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            lambda_s, lambda_t = lambdas[i], lambdas[i + 1]
            r = noise_scaler(lambda_t) / noise_scaler(lambda_s)
            x = r * x + (1 - r) * denoised
            if stage >= 2:
                dt = lambda_t - lambda_s
                step = -dt / INTEGRATION_POINTS
                positions = lambda_t + points * step
                scaled = noise_scaler(positions)
                integral = torch.sum(1 / scaled) * step
                denoised_d = (denoised - old_denoised) / (lambda_s - lambdas[i - 1])
                x = x + (dt + integral * noise_scaler(lambda_t)) * denoised_d
                if stage >= 3:
                    integral_u = torch.sum((positions - lambda_s) / scaled) * step
                    denoised_u = (denoised_d - old_denoised_d) / ((lambda_s - lambdas[i - 2]) / 2)
                    x = x + ((dt**2) / 2 + integral_u * noise_scaler(lambda_t)) * denoised_u
                old_denoised_d = denoised_d
            if s_noise > 0:
                variance = (lambda_t**2 - lambda_s**2 * r**2).sqrt().nan_to_num(nan=0.0)
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * variance
        old_denoised = denoised
    return x
