"""SA-Solver, the stochastic Adams predictor-corrector of Xue et al. (2023), arXiv 2309.05019.

Works in λ = -log σ. The weights b_j = α_t ∫_{λ_s}^{λ_t} (1+τ²) e^{(1+τ²)(λ-λ_t)} L_j(λ) dλ of the
previous x0 predictions come from the moments of the exponential weight (integration by parts)
and a Vandermonde solve. τ is the stochasticity: by default 1 while σ lies between the sigmas at
20 % and 80 % of the denoising, else 0, as ComfyUI chooses.
"""

from __future__ import annotations

from typing import Callable

import torch
from tqdm.auto import trange

from .samplers import _report, _seeded_noise_sampler


def exponential_moments(lambda_s: torch.Tensor, lambda_t: torch.Tensor, count: int, tau: float) -> torch.Tensor:
    """I_p = ∫_{λ_s}^{λ_t} (1+τ²) e^{(1+τ²)(λ-λ_t)} λ^p dλ for p < count, by I_p = [..]_s^t - p/(1+τ²)·I_{p-1}."""
    tau_mul = 1 + tau**2
    decay = (-tau_mul * (lambda_t - lambda_s)).exp()
    moments = []
    for p in range(count):
        boundary = lambda_t**p - lambda_s**p * decay
        moments.append(boundary - (p / tau_mul) * moments[-1] if p else boundary)
    return torch.stack(moments)


def stochastic_adams_weights(sigma_next: torch.Tensor, lambdas: torch.Tensor, lambda_s: torch.Tensor,
                             lambda_t: torch.Tensor, tau: float, simple_order_2: bool = False,
                             is_corrector_step: bool = False) -> torch.Tensor:
    """b_j for the x0 predictions at `lambdas` (oldest first), eqs. 15 and 18 of Xue et al. (2023)."""
    count = lambdas.shape[0]
    alpha_t = sigma_next * lambda_t.exp()
    if simple_order_2 and count == 2:  # the paper's Appendix D shortcut
        tau_mul = 1 + tau**2
        h = lambda_t - lambda_s
        if is_corrector_step:
            b_1 = alpha_t * (0.5 * tau_mul * h)
            b_2 = alpha_t * (-h * tau_mul).expm1().neg() - b_1
        else:
            b_2 = alpha_t * (0.5 * tau_mul * h**2) / (lambdas[-2] - lambda_s)
            b_1 = alpha_t * (-h * tau_mul).expm1().neg() - b_2
        return torch.stack([b_2, b_1])
    vandermonde = torch.vander(lambdas, count, increasing=True).T  # row p: λ_j^p
    return alpha_t * torch.linalg.solve(vandermonde, exponential_moments(lambda_s, lambda_t, count, tau))


def tau_interval(start_sigma: float, end_sigma: float, eta: float = 1.0) -> Callable[[torch.Tensor | float], float]:
    """τ(σ) = eta for end_sigma <= σ <= start_sigma, else 0."""
    def tau(sigma: torch.Tensor | float) -> float:
        if eta <= 0:
            return 0.0
        return eta if start_sigma >= float(sigma) >= end_sigma else 0.0
    return tau


@torch.no_grad()
def sample_sa_solver(model, x, sigmas, extra_args=None, callback=None, disable=False, tau_func=None, s_noise=1.0,
                     noise_sampler=None, predictor_order=3, corrector_order=4, use_pece=False, simple_order_2=False,
                     model_sampling=None):
    """SA-Solver predictor-corrector sampling (Xue et al. 2023); PECE re-evaluates the corrected state."""
    if len(sigmas) <= 1:
        return x
    extra_args = {} if extra_args is None else extra_args
    noise_sampler = _seeded_noise_sampler(x, extra_args, noise_sampler)
    if tau_func is None:
        if model_sampling is None:
            raise ValueError("sa_solver needs tau_func or the model's model_sampling for its default tau")
        tau_func = tau_interval(model_sampling.percent_to_sigma(0.2), model_sampling.percent_to_sigma(0.8))
    s_in = x.new_ones([x.shape[0]])
    lambdas = -sigmas.log()
    max_order = max(predictor_order, corrector_order)
    lower_order_to_end = float(sigmas[-1]) == 0
    x_pred = x
    h = 0.0
    tau = 0.0
    noise = 0.0
    predictions: list[torch.Tensor] = []
    for i in trange(len(sigmas) - 1, disable=disable):
        denoised = model(x_pred, sigmas[i] * s_in, **extra_args)
        _report(callback, x_pred, i, sigmas[i], sigmas[i], denoised)
        predictions = (predictions + [denoised])[-max_order:]
        predictor_used = min(predictor_order, len(predictions))
        corrector_used = 0 if i == 0 or (sigmas[i + 1] == 0 and not use_pece) else min(corrector_order, len(predictions))
        if lower_order_to_end:
            predictor_used = min(predictor_used, len(sigmas) - 2 - i)
            corrector_used = min(corrector_used, len(sigmas) - 1 - i)
        if corrector_used == 0:
            x = x_pred
        else:
            weights = stochastic_adams_weights(sigmas[i], lambdas[i - corrector_used + 1:i + 1], lambdas[i - 1],
                                               lambdas[i], tau, simple_order_2, is_corrector_step=True)
            stacked = torch.stack(predictions[-corrector_used:], dim=1)
            x = sigmas[i] / sigmas[i - 1] * (-(tau**2) * h).exp() * x + torch.tensordot(stacked, weights, dims=([1], [0]))
            if tau > 0 and s_noise > 0:
                x = x + noise  # the predictor's noise, reused so the corrector stays on the same path
            if use_pece:
                denoised = model(x, sigmas[i] * s_in, **extra_args)
                predictions[-1] = denoised
        if sigmas[i + 1] == 0:
            x_pred = denoised
        else:
            tau = tau_func(sigmas[i + 1])
            weights = stochastic_adams_weights(sigmas[i + 1], lambdas[i - predictor_used + 1:i + 1], lambdas[i],
                                               lambdas[i + 1], tau, simple_order_2, is_corrector_step=False)
            stacked = torch.stack(predictions[-predictor_used:], dim=1)
            h = lambdas[i + 1] - lambdas[i]
            x_pred = sigmas[i + 1] / sigmas[i] * (-(tau**2) * h).exp() * x + torch.tensordot(stacked, weights, dims=([1], [0]))
            if tau > 0 and s_noise > 0:
                noise = (noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1]
                         * (-2 * tau**2 * h).expm1().neg().sqrt() * s_noise)
                x_pred = x_pred + noise
    return x_pred


@torch.no_grad()
def sample_sa_solver_pece(model, x, sigmas, extra_args=None, callback=None, disable=False, tau_func=None,
                          s_noise=1.0, noise_sampler=None, predictor_order=3, corrector_order=4, simple_order_2=False,
                          model_sampling=None):
    """SA-Solver in PECE mode (predict, evaluate, correct, evaluate)."""
    return sample_sa_solver(model, x, sigmas, extra_args, callback, disable, tau_func, s_noise, noise_sampler,
                            predictor_order, corrector_order, True, simple_order_2, model_sampling)
