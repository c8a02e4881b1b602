"""Layers that keep their weights in the stored dtype and cast them per call.

An fp16 checkpoint stays one fp16 copy in memory; each layer casts its weight to the
dtype of its input when it runs (the idea behind ComfyUI's "manual cast" ops). When the
dtypes already agree nothing is copied, so an fp32 model computes exactly as plain torch.

On the CPU in bfloat16, Conv2d and Linear may hold their weight packed for oneDNN
(`diffusion.models.packing`): they then call oneDNN's operators on it directly (results agree
with the dense path to bf16 rounding).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from diffusion.models import packing


def _cast(param: Tensor | None, like: Tensor) -> Tensor | None:
    if param is None or (param.dtype == like.dtype and param.device == like.device):
        return param
    return param.to(device=like.device, dtype=like.dtype)


def _weight(layer: nn.Module, x: Tensor) -> Tensor:
    """The layer's weight as a dense tensor in `x`'s dtype (for the plain path)."""
    return _cast(packing.dense_weight(layer.weight), x)


class _DenseStateDict:
    """Mixin: `state_dict()` holds the dense form of a packed weight, as every reader expects."""

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        key = prefix + "weight"
        if packing.is_packed(destination.get(key)):
            destination[key] = packing.dense_weight(destination[key])


class Linear(_DenseStateDict, nn.Linear):
    """`nn.Linear` computing in the input's dtype."""

    pack_weights = False  # set by `packing.pack_module`

    def forward(self, x: Tensor) -> Tensor:
        if packing.should_pack(self, x):
            packing.pack_layer(self)
        if self.weight.is_mkldnn and x.dtype == self.weight.dtype and x.device.type == "cpu":
            return packing.linear_packed(self, x, _cast(self.bias, x))
        return F.linear(x, _weight(self, x), _cast(self.bias, x))


class Conv2d(_DenseStateDict, nn.Conv2d):
    """`nn.Conv2d` computing in the input's dtype."""

    pack_weights = False  # set by `packing.pack_module`

    def forward(self, x: Tensor) -> Tensor:
        if packing.should_pack(self, x):
            packing.pack_layer(self)
        if self.weight.is_mkldnn and x.dtype == self.weight.dtype and x.device.type == "cpu":
            return packing.conv_packed(self, x, _cast(self.bias, x))
        return self._conv_forward(x, _weight(self, x), _cast(self.bias, x))


class GroupNorm(nn.GroupNorm):
    """`nn.GroupNorm` computing in the input's dtype."""

    def forward(self, x: Tensor) -> Tensor:
        return F.group_norm(x, self.num_groups, _cast(self.weight, x), _cast(self.bias, x), self.eps)


class LayerNorm(nn.LayerNorm):
    """`nn.LayerNorm` computing in the input's dtype."""

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(
            x, self.normalized_shape, _cast(self.weight, x), _cast(self.bias, x), self.eps
        )


def group_norm32(channels: int, eps: float = 1e-6) -> GroupNorm:
    """The 32-group normalisation used throughout the ldm UNet and VAE (`Normalize`)."""
    return GroupNorm(32, channels, eps=eps, affine=True)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, padding: int = 1) -> Conv2d:
    return Conv2d(in_channels, out_channels, 3, stride=stride, padding=padding)


def conv1x1(in_channels: int, out_channels: int) -> Conv2d:
    return Conv2d(in_channels, out_channels, 1)

