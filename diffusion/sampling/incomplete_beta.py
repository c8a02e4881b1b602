"""Inverse of the regularized incomplete beta function, the Beta(a, b) quantile, in float64 torch."""

from __future__ import annotations

import math

import torch

_CONTINUED_FRACTION_TERMS = 300
_BISECTION_ROUNDS = 64  # halves [0, 1] below float64 resolution
_TINY = 1e-300


def _continued_fraction(x: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """The continued fraction of I_x(a, b) (DLMF 8.17.22), evaluated by the modified Lentz method."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = torch.ones_like(x)
    d = 1.0 - qab * x / qap
    d = torch.where(d.abs() < _TINY, torch.full_like(d, _TINY), d)
    d = 1.0 / d
    h = d.clone()
    for m in range(1, _CONTINUED_FRACTION_TERMS + 1):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + numerator * d
            d = torch.where(d.abs() < _TINY, torch.full_like(d, _TINY), d)
            c = 1.0 + numerator / c
            c = torch.where(c.abs() < _TINY, torch.full_like(c, _TINY), c)
            d = 1.0 / d
            delta = d * c
            h = h * delta
        if bool(((delta - 1.0).abs() < 1e-15).all()):
            break
    return h


def _continued_fraction_pair(x: torch.Tensor, a: float, b: float, direct: torch.Tensor) -> torch.Tensor:
    """The fraction for (x, a, b) where `direct`, else for (x, b, a) (x already mirrored)."""
    result = torch.empty_like(x)
    if bool(direct.any()):
        result[direct] = _continued_fraction(x[direct], a, b)
    if bool((~direct).any()):
        result[~direct] = _continued_fraction(x[~direct], b, a)
    return result


def regularized_incomplete_beta(x: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """I_x(a, b), the Beta(a, b) cumulative distribution, for x in [0, 1]."""
    x = torch.as_tensor(x, dtype=torch.float64).clamp(0.0, 1.0)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    inner = x.clamp(_TINY, 1.0 - 1e-16)
    front = torch.exp(log_front + a * inner.log() + b * torch.log1p(-inner))
    # The fraction converges fast only below the mean; use I_x(a,b) = 1 - I_{1-x}(b,a) above it.
    direct = x < (a + 1.0) / (a + b + 2.0)
    mirrored = torch.where(direct, inner, 1.0 - inner)
    fraction = _continued_fraction_pair(mirrored, a, b, direct)
    value = torch.where(direct, front * fraction / a, 1.0 - front * fraction / b)
    value = torch.where(x <= 0.0, torch.zeros_like(value), value)
    return torch.where(x >= 1.0, torch.ones_like(value), value)


def beta_ppf(quantile: torch.Tensor | float, a: float, b: float) -> torch.Tensor:
    """Quantile function of Beta(a, b): the x with I_x(a, b) = quantile, by bisection (monotone, robust)."""
    quantile = torch.as_tensor(quantile, dtype=torch.float64)
    low = torch.zeros_like(quantile)
    high = torch.ones_like(quantile)
    for _ in range(_BISECTION_ROUNDS):
        middle = 0.5 * (low + high)
        below = regularized_incomplete_beta(middle, a, b) < quantile
        low = torch.where(below, middle, low)
        high = torch.where(below, high, middle)
    result = 0.5 * (low + high)
    result = torch.where(quantile <= 0.0, torch.zeros_like(result), result)
    return torch.where(quantile >= 1.0, torch.ones_like(result), result)
