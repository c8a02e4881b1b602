"""UniPC, the unified predictor-corrector solver of Zhao et al. (2023), https://arxiv.org/abs/2302.04867.

Multistep data-prediction form with the B(h) variants bh1 (B(h) = h) and bh2 (B(h) = e^h - 1),
order up to 3, lower orders for the first (warm-up) and last steps, and no corrector after the
final step. The state is kept in the variance-preserving scaling x_vp = x / sqrt(1 + σ²), where
λ = -log σ is the half log-SNR. A schedule ending in σ = 0 stops at σ = 0.001 instead (λ must
stay finite), as ComfyUI's UniPC does.
"""

from __future__ import annotations


import torch
from tqdm.auto import trange

FINAL_SIGMA = 0.001


def _alpha(sigma: torch.Tensor) -> torch.Tensor:
    """VP signal scale α = 1 / sqrt(1 + σ²)."""
    return 1.0 / torch.sqrt(1.0 + sigma * sigma)


def _half_log_snr(sigma: torch.Tensor) -> torch.Tensor:
    return -torch.log(sigma)


def _update(x: torch.Tensor, previous_x0: list[torch.Tensor], previous_sigmas: list[torch.Tensor],
            sigma_t: torch.Tensor, order: int, variant: str, x0_at_t: torch.Tensor | None = None) -> torch.Tensor:
    """One UniP step from previous_sigmas[-1] to sigma_t, or with x0_at_t the UniC correction of that step."""
    sigma_s0 = previous_sigmas[-1]
    m0 = previous_x0[-1]
    lambda_s0, lambda_t = _half_log_snr(sigma_s0), _half_log_snr(sigma_t)
    h = lambda_t - lambda_s0
    ratios, differences = [], []
    for k in range(1, order):
        r = (_half_log_snr(previous_sigmas[-(k + 1)]) - lambda_s0) / h
        ratios.append(r)
        differences.append((previous_x0[-(k + 1)] - m0) / r)
    ratios.append(torch.ones((), device=x.device))
    ratios_t = torch.stack(ratios)

    hh = -h  # data prediction
    h_phi_1 = torch.expm1(hh)
    if variant == "bh1":
        b_h = hh
    elif variant == "bh2":
        b_h = torch.expm1(hh)
    else:
        raise ValueError(f"unknown UniPC variant {variant!r}")
    # b_i = i! · h·φ_{i+1}(h) / B(h), with φ_{k+1} from the recurrence φ_{k+1}(h) = (φ_k(h) - 1/k!) / h
    rows, rhs = [], []
    h_phi_k = h_phi_1 / hh - 1
    factorial = 1
    for i in range(1, order + 1):
        rows.append(torch.pow(ratios_t, i - 1))
        rhs.append(h_phi_k * factorial / b_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    matrix = torch.stack(rows)
    rhs_t = torch.stack(rhs)

    alpha_t = _alpha(sigma_t)
    sigma_vp_t, sigma_vp_s0 = sigma_t * alpha_t, sigma_s0 * _alpha(sigma_s0)
    x_t = sigma_vp_t / sigma_vp_s0 * x - alpha_t * h_phi_1 * m0
    if x0_at_t is None:  # predictor UniP-p
        if not differences:
            return x_t
        rhos = (torch.ones(1, device=x.device) * 0.5 if order == 2
                else torch.linalg.solve(matrix[:-1, :-1], rhs_t[:-1])).to(x.dtype)
        return x_t - alpha_t * b_h * sum(rho * d for rho, d in zip(rhos, differences))
    rhos = (torch.ones(1, device=x.device) * 0.5 if order == 1 else torch.linalg.solve(matrix, rhs_t)).to(x.dtype)
    correction = sum((rho * d for rho, d in zip(rhos[:-1], differences)), torch.zeros_like(x))
    return x_t - alpha_t * b_h * (correction + rhos[-1] * (x0_at_t - m0))


@torch.no_grad()
def sample_uni_pc(model, x, sigmas, extra_args=None, callback=None, disable=None, variant: str = "bh1",
                  max_order: int = 3):
    """UniPC multistep sampling (Zhao et al. 2023) with the bh1 or bh2 B(h)."""
    extra_args = {} if extra_args is None else extra_args
    if len(sigmas) <= 1:
        return x
    sigmas = sigmas.clone()
    if sigmas[-1] == 0:
        sigmas[-1] = FINAL_SIGMA
    steps = len(sigmas) - 1
    order = max(1, min(max_order, steps - 1))
    s_in = x.new_ones([x.shape[0]])

    def x0_of(x_vp: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return model(x_vp / _alpha(sigma), sigma * s_in, **extra_args)

    x_vp = x * _alpha(sigmas[0])
    previous_x0 = [x0_of(x_vp, sigmas[0])]
    previous_sigmas = [sigmas[0]]
    for i in trange(steps, disable=disable):
        if callback is not None:
            callback({"x": x_vp / _alpha(sigmas[i]), "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i],
                      "denoised": previous_x0[-1]})
        step_order = min(order, i + 1, steps - i)  # warm up, and lower the order towards the end
        x_next = _update(x_vp, previous_x0, previous_sigmas, sigmas[i + 1], step_order, variant)
        if i < steps - 1:  # UniC: evaluate at the prediction, correct it, reuse the evaluation next step
            x0_next = x0_of(x_next, sigmas[i + 1])
            x_next = _update(x_vp, previous_x0, previous_sigmas, sigmas[i + 1], step_order, variant, x0_next)
            previous_x0 = (previous_x0 + [x0_next])[-order:]
            previous_sigmas = (previous_sigmas + [sigmas[i + 1]])[-order:]
        x_vp = x_next
    return x_vp / _alpha(sigmas[-1])


@torch.no_grad()
def sample_uni_pc_bh2(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """UniPC with B(h) = e^h - 1 (Zhao et al. 2023, bh2), better for guided sampling at few steps."""
    return sample_uni_pc(model, x, sigmas, extra_args, callback, disable, variant="bh2")
