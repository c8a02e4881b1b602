"""Fixtures: k-diffusion's sampling module as the reference, and a small deterministic denoiser."""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import types

import pytest
import torch


def _load_k_diffusion_sampling() -> types.ModuleType:
    """Import k_diffusion/sampling.py alone: its package __init__ pulls torchvision, which does not import here."""
    spec = importlib.util.find_spec("k_diffusion")
    package_dir = pathlib.Path(spec.submodule_search_locations[0])
    package = types.ModuleType("kdiff_reference")
    package.__path__ = [str(package_dir)]
    utils = types.ModuleType("kdiff_reference.utils")
    utils.append_dims = lambda x, n: x[(...,) + (None,) * (n - x.ndim)]
    torchdiffeq = sys.modules.get("torchdiffeq") or types.ModuleType("torchdiffeq")
    torchdiffeq.odeint = getattr(torchdiffeq, "odeint", None)  # only log_likelihood uses it
    sys.modules.setdefault("torchdiffeq", torchdiffeq)
    sys.modules["kdiff_reference"] = package
    sys.modules["kdiff_reference.utils"] = utils
    module_spec = importlib.util.spec_from_file_location("kdiff_reference.sampling", package_dir / "sampling.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def kdiff() -> types.ModuleType:
    return _load_k_diffusion_sampling()


class ToyDenoiser:
    """D(x, σ): a smooth, non-linear x0 guess that depends on σ per batch item; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        generator = torch.Generator().manual_seed(1234)
        self.target = torch.randn(1, 4, 8, 8, generator=generator) * 0.5

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **extra_args) -> torch.Tensor:
        self.calls += 1
        s = sigma.reshape(-1, 1, 1, 1)
        return (self.target + x * 0.3 / (1 + s) + torch.tanh(x) * 0.1) / (1 + s * s) ** 0.5 * 1.2


@pytest.fixture
def denoiser() -> ToyDenoiser:
    return ToyDenoiser()


@pytest.fixture
def start_noise() -> torch.Tensor:
    return torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(7))
