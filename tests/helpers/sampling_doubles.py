"""A MODEL test double for the sampling tests: the DiffusionModel contract over a cheap analytic denoiser."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import torch

from diffusion.latent_formats import SD15
from diffusion.sampling.model_sampling import ModelSamplingDiscrete


class DummyModel:
    """apply_model returns an x0 that depends on x, sigma and the text context; every call is recorded."""

    def __init__(self, prediction_type: str = "eps") -> None:
        self.model_sampling = ModelSamplingDiscrete(prediction_type)
        self.latent_format = SD15
        self.devices = SimpleNamespace(device=torch.device("cpu"))
        self.model_options: dict = {"transformer_options": {}}
        self.calls: list[dict] = []

    def clone(self) -> "DummyModel":
        twin = copy.copy(self)
        twin.model_options = copy.deepcopy(self.model_options)
        return twin

    def apply_model(self, x, sigma, context=None, y=None, control=None, transformer_options=None):
        self.calls.append({"x": x.clone(), "sigma": sigma.clone(), "context": context, "y": y, "control": control,
                           "transformer_options": transformer_options})
        return denoise(x, sigma, context)


def denoise(x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    """The double's x0 prediction for a batch: smooth in x, shrinking with sigma, shifted by the prompt."""
    s = sigma.reshape(-1, 1, 1, 1)
    shift = 0.0 if context is None else context.mean(dim=(1, 2)).reshape(-1, 1, 1, 1)
    return (x * 0.4 + torch.tanh(x) * 0.2) / (1 + s * s) ** 0.5 + shift


def conditioning(value: float, tokens: int = 3, **options) -> list:
    """A one-entry CONDITIONING whose cross-attention tensor is filled with `value`."""
    return [[torch.full((1, tokens, 8), float(value)), dict(options)]]
