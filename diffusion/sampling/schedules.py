"""Sigma schedules: descending noise levels ending in 0 (comfy-compat §10.3, k-diffusion style)."""

from __future__ import annotations

import math
from typing import Callable, Protocol

import torch

from .incomplete_beta import beta_ppf


class DiscreteSigmas(Protocol):
    """What a schedule needs from ModelSamplingDiscrete (or any model_sampling)."""

    sigmas: torch.Tensor
    sigma_min: torch.Tensor
    sigma_max: torch.Tensor

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor: ...
    def sigma(self, timestep: torch.Tensor) -> torch.Tensor: ...


def append_zero(sigmas: torch.Tensor) -> torch.Tensor:
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def get_sigmas_karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0, device: str = "cpu") -> torch.Tensor:
    """The noise schedule of Karras et al. (2022), eq. 5."""
    ramp = torch.linspace(0, 1, n)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    return append_zero(sigmas).to(device)


def get_sigmas_exponential(n: int, sigma_min: float, sigma_max: float, device: str = "cpu") -> torch.Tensor:
    """Sigmas equally spaced in log sigma."""
    sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), n, device=device).exp()
    return append_zero(sigmas)


def get_sigmas_kl_optimal(n: int, sigma_min: float, sigma_max: float, device: str = "cpu") -> torch.Tensor:
    """The KL-optimal schedule of Sabour et al. (2024, "Align Your Steps"): tan of a linear ramp in atan σ."""
    if n == 1:  # the formula divides by n - 1
        return torch.tensor([sigma_max, 0.0], device=device)
    ramp = torch.arange(n, dtype=torch.float).div_(n - 1)
    sigmas = ramp.new_zeros(n + 1)
    sigmas[:-1] = (ramp * math.atan(sigma_min) + (1 - ramp) * math.atan(sigma_max)).tan_()
    return sigmas.to(device)


def simple_schedule(model_sampling: DiscreteSigmas, steps: int) -> torch.Tensor:
    """Evenly strided training sigmas, from the top."""
    table = model_sampling.sigmas
    stride = len(table) / steps
    sigmas = [float(table[-(1 + int(i * stride))]) for i in range(steps)]
    return torch.FloatTensor(sigmas + [0.0])


def _timestep_schedule(model_sampling: DiscreteSigmas, steps: int, sgm: bool) -> torch.Tensor:
    start = model_sampling.timestep(model_sampling.sigma_max)
    end = model_sampling.timestep(model_sampling.sigma_min)
    add_zero = True
    if sgm:
        timesteps = torch.linspace(start, end, steps + 1)[:-1]
    else:
        if math.isclose(float(model_sampling.sigma(end)), 0, abs_tol=0.00001):
            steps += 1
            add_zero = False
        timesteps = torch.linspace(start, end, steps)
    sigmas = [float(model_sampling.sigma(t)) for t in timesteps]
    return torch.FloatTensor(sigmas + ([0.0] if add_zero else []))


def normal_schedule(model_sampling: DiscreteSigmas, steps: int) -> torch.Tensor:
    """Timesteps evenly spaced from max to min inclusive, mapped to sigmas."""
    return _timestep_schedule(model_sampling, steps, sgm=False)


def sgm_uniform_schedule(model_sampling: DiscreteSigmas, steps: int) -> torch.Tensor:
    """Timesteps evenly spaced from max towards min, last one dropped (Stability's sgm)."""
    return _timestep_schedule(model_sampling, steps, sgm=True)


def ddim_uniform_schedule(model_sampling: DiscreteSigmas, steps: int) -> torch.Tensor:
    """DDIM's uniform timestep skipping (Song et al. 2021): every len//steps-th training sigma."""
    table = model_sampling.sigmas
    index = 1
    if math.isclose(float(table[index]), 0, abs_tol=0.00001):
        steps += 1
        sigmas: list[float] = []
    else:
        sigmas = [0.0]
    stride = max(len(table) // steps, 1)
    while index < len(table):
        sigmas.append(float(table[index]))
        index += stride
    return torch.FloatTensor(sigmas[::-1])


def beta_schedule(model_sampling: DiscreteSigmas, steps: int, alpha: float = 0.6, beta: float = 0.6) -> torch.Tensor:
    """Timesteps at Beta(α, β) quantiles (Lee et al. 2024, "Beta Sampling is All You Need")."""
    table = model_sampling.sigmas
    last_timestep = len(table) - 1
    sigmas = []
    previous = -1.0
    quantiles = 1.0 - torch.arange(steps, dtype=torch.float64) * (1.0 / steps)  # numpy.linspace(0, 1, steps, endpoint=False)
    timesteps = torch.round(beta_ppf(quantiles, alpha, beta) * last_timestep)  # half-to-even, as numpy.rint
    for timestep in timesteps.tolist():
        if timestep != previous:
            sigmas.append(float(table[int(timestep)]))
        previous = timestep
    return torch.FloatTensor(sigmas + [0.0])


def linear_quadratic_schedule(
    model_sampling: DiscreteSigmas, steps: int, threshold_noise: float = 0.025, linear_steps: int | None = None
) -> torch.Tensor:
    """Mochi's schedule (Genmo 2024): linear in noise to a threshold, then quadratic, times sigma_max."""
    if steps == 1:
        schedule = [1.0, 0.0]
    else:
        if linear_steps is None:
            linear_steps = steps // 2
        linear = [i * threshold_noise / linear_steps for i in range(linear_steps)]
        step_diff = linear_steps - threshold_noise * steps
        quadratic_steps = steps - linear_steps
        quadratic_coef = step_diff / (linear_steps * quadratic_steps**2)
        linear_coef = threshold_noise / linear_steps - 2 * step_diff / (quadratic_steps**2)
        const = quadratic_coef * (linear_steps**2)
        quadratic = [quadratic_coef * (i**2) + linear_coef * i + const for i in range(linear_steps, steps)]
        schedule = [1.0 - value for value in linear + quadratic + [1.0]]
    return torch.FloatTensor(schedule) * float(model_sampling.sigma_max)


def karras_schedule(model_sampling: DiscreteSigmas, steps: int) -> torch.Tensor:
    return get_sigmas_karras(steps, float(model_sampling.sigma_min), float(model_sampling.sigma_max))


def exponential_schedule(model_sampling: DiscreteSigmas, steps: int) -> torch.Tensor:
    return get_sigmas_exponential(steps, float(model_sampling.sigma_min), float(model_sampling.sigma_max))


def kl_optimal_schedule(model_sampling: DiscreteSigmas, steps: int) -> torch.Tensor:
    return get_sigmas_kl_optimal(steps, float(model_sampling.sigma_min), float(model_sampling.sigma_max))


SCHEDULES: dict[str, Callable[[DiscreteSigmas, int], torch.Tensor]] = {
    "simple": simple_schedule,
    "sgm_uniform": sgm_uniform_schedule,
    "karras": karras_schedule,
    "exponential": exponential_schedule,
    "ddim_uniform": ddim_uniform_schedule,
    "beta": beta_schedule,
    "normal": normal_schedule,
    "linear_quadratic": linear_quadratic_schedule,
    "kl_optimal": kl_optimal_schedule,
}


def calculate_sigmas(model_sampling: DiscreteSigmas, scheduler_name: str, steps: int) -> torch.Tensor:
    """The named schedule for `steps` steps (float32, CPU, ends in 0)."""
    schedule = SCHEDULES.get(scheduler_name)
    if schedule is None:
        raise ValueError(f"unknown scheduler {scheduler_name!r}; expected one of {sorted(SCHEDULES)}")
    return schedule(model_sampling, steps)
