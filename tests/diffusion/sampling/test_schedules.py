"""Sigma schedules (comfy-compat §10.3) against k-diffusion, scipy and the formulas written out in numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from diffusion.sampling import schedules
from diffusion.sampling.incomplete_beta import beta_ppf, regularized_incomplete_beta
from diffusion.sampling.model_sampling import ModelSamplingDiscrete
from diffusion.sampling.names import SCHEDULER_NAMES

SAMPLING = ModelSamplingDiscrete()
TABLE = SAMPLING.sigmas.double().numpy()
LOG_TABLE = np.log(SAMPLING.sigmas.numpy()).astype(np.float64)


def sigma_at(t: float) -> float:
    """Log-linear interpolation of the training sigmas at a fractional timestep."""
    return float(np.exp(np.interp(t, np.arange(1000), LOG_TABLE)))


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
@pytest.mark.parametrize("steps", [1, 2, 7, 20, 33])
def test_every_schedule_is_descending_and_ends_in_zero(name, steps):
    sigmas = schedules.calculate_sigmas(SAMPLING, name, steps)
    assert sigmas.dtype == torch.float32
    assert float(sigmas[-1]) == 0.0
    assert torch.all(sigmas[:-1] > sigmas[1:])
    if name not in ("beta", "ddim_uniform"):  # beta drops duplicates, ddim_uniform strides
        assert len(sigmas) == steps + 1


def test_karras_and_exponential_match_k_diffusion(kdiff):
    for steps in (1, 10, 25):
        lo, hi = float(SAMPLING.sigma_min), float(SAMPLING.sigma_max)
        torch.testing.assert_close(schedules.calculate_sigmas(SAMPLING, "karras", steps),
                                   kdiff.get_sigmas_karras(steps, lo, hi), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(schedules.calculate_sigmas(SAMPLING, "exponential", steps),
                                   kdiff.get_sigmas_exponential(steps, lo, hi), rtol=1e-6, atol=1e-6)


def test_karras_spans_the_model_range():
    sigmas = schedules.calculate_sigmas(SAMPLING, "karras", 10)
    assert float(sigmas[0]) == pytest.approx(14.614641, abs=1e-5)
    assert float(sigmas[-2]) == pytest.approx(0.029167, abs=1e-6)


@pytest.mark.parametrize("steps", [1, 4, 20, 50])
def test_normal_is_evenly_spaced_timesteps_from_999_to_0(steps):
    expected = [sigma_at(t) for t in np.linspace(999, 0, steps)] + [0.0]
    np.testing.assert_allclose(schedules.calculate_sigmas(SAMPLING, "normal", steps).numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("steps", [1, 4, 20, 50])
def test_sgm_uniform_drops_the_last_of_steps_plus_one_timesteps(steps):
    expected = [sigma_at(t) for t in np.linspace(999, 0, steps + 1)[:-1]] + [0.0]
    np.testing.assert_allclose(schedules.calculate_sigmas(SAMPLING, "sgm_uniform", steps).numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("steps", [1, 3, 20, 30])
def test_simple_strides_the_training_sigmas_from_the_top(steps):
    stride = 1000 / steps
    expected = [TABLE[999 - int(i * stride)] for i in range(steps)] + [0.0]
    np.testing.assert_allclose(schedules.calculate_sigmas(SAMPLING, "simple", steps).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("steps", [3, 7, 20])
def test_ddim_uniform_takes_every_nth_sigma_from_index_1(steps):
    stride = 1000 // steps
    expected = [0.0] + [TABLE[i] for i in range(1, 1000, stride)]
    np.testing.assert_allclose(schedules.calculate_sigmas(SAMPLING, "ddim_uniform", steps).numpy(), expected[::-1], rtol=1e-6)
    assert len(schedules.calculate_sigmas(SAMPLING, "ddim_uniform", 7)) == 9  # 142-strides fit 8 times into 1..999


@pytest.mark.parametrize("steps", [1, 5, 20, 60, 200])
def test_beta_uses_beta_quantiles_and_skips_repeats(steps):
    timesteps = np.rint(scipy.stats.beta.ppf(1 - np.linspace(0, 1, steps, endpoint=False), 0.6, 0.6) * 999)
    expected, last = [], None
    for t in timesteps:
        if t != last:
            expected.append(TABLE[int(t)])
        last = t
    np.testing.assert_allclose(schedules.calculate_sigmas(SAMPLING, "beta", steps).numpy(), expected + [0.0], rtol=1e-6)


def test_beta_quantile_function_matches_scipy():
    quantiles = torch.linspace(0, 1, 257, dtype=torch.float64)
    for a, b in ((0.6, 0.6), (2.0, 5.0), (0.5, 3.0)):
        np.testing.assert_allclose(beta_ppf(quantiles, a, b).numpy(), scipy.stats.beta.ppf(quantiles.numpy(), a, b), atol=1e-12)
        np.testing.assert_allclose(regularized_incomplete_beta(quantiles, a, b).numpy(),
                                   scipy.stats.beta.cdf(quantiles.numpy(), a, b), atol=1e-12)


@pytest.mark.parametrize("steps", [1, 2, 9, 30])
def test_linear_quadratic_is_mochis_schedule(steps):
    """Linear to 0.025 over steps//2, then the quadratic through (linear_steps, 0.025) and (steps, 1)."""
    if steps == 1:
        noise = np.array([0.0, 1.0])
    else:
        n_lin = steps // 2
        n_quad = steps - n_lin
        linear = 0.025 * np.arange(n_lin) / n_lin
        # q(i) = a·i² + b·i + c with q(n_lin) = 0.025, q'(n_lin) = 0.025 / n_lin (smooth join), q(steps) = 1
        a = (1 - 0.025 - 0.025 / n_lin * n_quad) / n_quad**2
        b = 0.025 / n_lin - 2 * a * n_lin
        c = 0.025 - a * n_lin**2 - b * n_lin
        i = np.arange(n_lin, steps)
        noise = np.concatenate([linear, a * i**2 + b * i + c, [1.0]])
    expected = (1.0 - noise) * float(SAMPLING.sigma_max)
    np.testing.assert_allclose(schedules.calculate_sigmas(SAMPLING, "linear_quadratic", steps).numpy(), expected,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("steps", [2, 10])
def test_kl_optimal_interpolates_atan_sigma(steps):
    lo, hi = float(SAMPLING.sigma_min), float(SAMPLING.sigma_max)
    ramp = np.arange(steps) / (steps - 1)
    expected = list(np.tan(ramp * math.atan(lo) + (1 - ramp) * math.atan(hi))) + [0.0]
    np.testing.assert_allclose(schedules.calculate_sigmas(SAMPLING, "kl_optimal", steps).numpy(), expected, rtol=1e-5)


def test_unknown_scheduler_raises_instead_of_falling_back():
    with pytest.raises(ValueError, match="unknown scheduler"):
        schedules.calculate_sigmas(SAMPLING, "cosine", 10)
