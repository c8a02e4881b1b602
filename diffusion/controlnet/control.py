"""The CONTROL_NET value: a control network plus its hint, strength, step range and predecessor.

Behaves like ComfyUI's `comfy.controlnet.ControlBase` (comfy-compat §8, §10.5): nodes call
`copy().set_cond_hint(hint NCHW, strength, (start, end), vae)` and chain several with
`set_previous_controlnet`; the guidance calls `pre_run(model)` before sampling (turning the
start/end percents into sigmas and taking the model's parameterisation), then
`get_control(x, sigma, cond, batched_number)` for each model call, and `cleanup()` after.

`get_control` returns `{"input": [...], "middle": [...], "output": [...]}`: the residuals the
UNet adds (lists consumed from the end, see `UNetModel.forward`), each times `strength` and
summed with those of the previous control in the chain. Outside its step range a control
contributes nothing, but its predecessors still do.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def resize_hint(hint: Tensor, height: int, width: int) -> Tensor:
    """Centre-crop `[B, C, H, W]` to the aspect ratio of (height, width), then resize with nearest-exact.

    ComfyUI's `common_upscale(..., "nearest-exact", "center")`.
    """
    old_h, old_w = hint.shape[-2:]
    old_aspect, new_aspect = old_w / old_h, width / height
    if old_aspect > new_aspect:
        keep = round(old_w * new_aspect / old_aspect)
        left = (old_w - keep) // 2
        hint = hint[..., :, left:left + keep]
    elif old_aspect < new_aspect:
        keep = round(old_h * old_aspect / new_aspect)
        top = (old_h - keep) // 2
        hint = hint[..., top:top + keep, :]
    return F.interpolate(hint, size=(height, width), mode="nearest-exact")


def broadcast_hint(hint: Tensor, batch: int, batched_number: int) -> Tensor:
    """Repeat a hint batch to a model batch of `batched_number` conds × `batch // batched_number` latents."""
    per_cond = batch // batched_number
    hint = hint[:per_cond]
    if hint.shape[0] < per_cond:
        hint = hint.repeat(math.ceil(per_cond / hint.shape[0]), 1, 1, 1)[:per_cond]
    return hint.repeat(batched_number, 1, 1, 1) if hint.shape[0] != batch else hint


def merge_control(current: dict[str, list], previous: dict[str, list] | None) -> dict[str, list]:
    """Add a previous control's residuals into this one's, position by position."""
    if previous is None:
        return current
    for name, residuals in previous.items():
        mine = current.setdefault(name, [])
        for index, residual in enumerate(residuals):
            if index >= len(mine):
                mine.append(residual)
            elif residual is not None:
                mine[index] = residual if mine[index] is None else mine[index] + residual
    return current


class ControlBase:
    """What every control (ControlNet, T2I-Adapter) shares: hint, strength, range, chain."""

    compression_ratio = 8  # hint pixels per latent pixel

    def __init__(self) -> None:
        self.cond_hint_original: Tensor | None = None
        self.cond_hint: Tensor | None = None
        self.strength = 1.0
        self.timestep_percent_range = (0.0, 1.0)
        self.sigma_range: tuple[float, float] | None = None
        self.previous_controlnet: ControlBase | None = None
        self.vae: Any = None
        self.model_sampling: Any = None

    def set_cond_hint(self, cond_hint: Tensor, strength: float = 1.0,
                      timestep_percent_range: tuple[float, float] = (0.0, 1.0), vae: Any = None,
                      extra_concat: list | None = None) -> ControlBase:
        """Set the hint image `[B, C, H, W]` (0..1), strength and (start, end) percents; returns self."""
        self.cond_hint_original = cond_hint
        self.strength = float(strength)
        self.timestep_percent_range = (float(timestep_percent_range[0]), float(timestep_percent_range[1]))
        self.vae = vae
        self.cond_hint = None
        return self

    def set_previous_controlnet(self, controlnet: ControlBase | None) -> ControlBase:
        self.previous_controlnet = controlnet
        return self

    def copy_to(self, other: ControlBase) -> ControlBase:
        other.cond_hint_original = self.cond_hint_original
        other.strength = self.strength
        other.timestep_percent_range = self.timestep_percent_range
        other.vae = self.vae
        return other

    def pre_run(self, model: Any, percent_to_timestep_function: Any = None) -> None:
        """Take the model's parameterisation and turn the percent range into sigmas (whole chain)."""
        self.model_sampling = model.model_sampling
        start, end = self.timestep_percent_range
        self.sigma_range = (self.model_sampling.percent_to_sigma(start), self.model_sampling.percent_to_sigma(end))
        if self.previous_controlnet is not None:
            self.previous_controlnet.pre_run(model, percent_to_timestep_function)

    def cleanup(self) -> None:
        """Drop what was computed for the last sampling run (the resized hint)."""
        self.cond_hint = None
        if self.previous_controlnet is not None:
            self.previous_controlnet.cleanup()

    def get_models(self) -> list[Any]:
        previous = self.previous_controlnet.get_models() if self.previous_controlnet is not None else []
        return previous + [self]

    def active_at(self, sigma: Tensor) -> bool:
        """Whether the current sigma lies in [sigma(end), sigma(start)]."""
        if self.sigma_range is None:
            return True
        value = float(sigma.flatten()[0])
        return self.sigma_range[1] <= value <= self.sigma_range[0]

    def hint_for(self, x: Tensor, batched_number: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The hint resized to x's size × compression ratio, batched like x (cached per run)."""
        height, width = x.shape[2] * self.compression_ratio, x.shape[3] * self.compression_ratio
        if self.cond_hint is None or tuple(self.cond_hint.shape[-2:]) != (height, width):
            self.cond_hint = resize_hint(self.cond_hint_original.float(), height, width).to(device, dtype)
        return broadcast_hint(self.cond_hint, x.shape[0], batched_number)

    def get_control(self, x_noisy: Tensor, t: Tensor, cond: dict, batched_number: int,
                    transformer_options: dict | None = None) -> dict[str, list] | None:
        previous = None
        if self.previous_controlnet is not None:
            previous = self.previous_controlnet.get_control(x_noisy, t, cond, batched_number, transformer_options)
        if not self.active_at(t):
            return previous
        return merge_control(self.residuals(x_noisy, t, cond, batched_number), previous)

    def residuals(self, x_noisy: Tensor, t: Tensor, cond: dict, batched_number: int) -> dict[str, list]:
        raise NotImplementedError


class ControlNet(ControlBase):
    """A `ControlNetModel` applied as a CONTROL_NET value.

    Args:
        control_model: the network.
        devices: a `DeviceManager` (where and in what dtype it runs).
    """

    def __init__(self, control_model: torch.nn.Module, devices: Any):
        super().__init__()
        self.control_model = control_model
        self.devices = devices

    def copy(self) -> ControlNet:
        """A control sharing the network, with the same hint and settings (and no predecessor)."""
        return self.copy_to(ControlNet(self.control_model, self.devices))

    def torch_modules(self) -> list[torch.nn.Module]:
        return [self.control_model]

    def residuals(self, x_noisy: Tensor, t: Tensor, cond: dict, batched_number: int) -> dict[str, list]:
        if self.model_sampling is None:
            raise RuntimeError("ControlNet.get_control before pre_run(model): the guidance must call pre_run")
        device, dtype = self.devices.device, self.devices.compute_dtype
        self.devices.load(self)
        sigma = t.to(x_noisy.device).float()
        model_input = self.model_sampling.calculate_input(sigma, x_noisy.float())
        timesteps = self.model_sampling.timestep(sigma).float()
        context = cond.get("c_crossattn")
        y = cond.get("y")
        with self.devices.inference():
            outputs = self.control_model(
                model_input.to(device, dtype), self.hint_for(x_noisy, batched_number, device, dtype),
                timesteps.to(device), None if context is None else context.to(device, dtype),
                None if y is None else y.to(device, dtype))
        scaled = [residual.to(x_noisy.dtype) * self.strength for residual in outputs]
        return {"input": [], "middle": scaled[-1:], "output": scaled[:-1]}
