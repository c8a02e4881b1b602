"""T2I-Adapters (Mou et al. 2023, "T2I-Adapter"), loaded through the ControlNet loader.

The adapter (TencentARC's `Adapter`, keys `conv_in`, `body.N.{in_conv, block1, block2, skep,
down_opt.op}`) turns the hint into one feature map per UNet level, once per sampling run:
`PixelUnshuffle(8)`, `conv_in`, then per level `nums_rb` residual blocks
(`x + block2(relu(block1(x)))`, the first of each level after the first downsampling by 2).
The UNet adds level l's features after the last ResBlock of level l, i.e. to the output of
input block `l·(n+1) + n` (n = the UNet's `num_res_blocks`), through the `"input"` list.

diffusers' layout (`adapter.conv_in`, `adapter.body.i.resnets.j.block{1,2}`, `adapter.body.i.in_conv`)
is renamed to this one on load.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffusion.controlnet.control import ControlBase, broadcast_hint, resize_hint
from diffusion.models.layers import Conv2d

_DIFFUSERS_BLOCK = re.compile(r"adapter\.body\.(\d+)\.resnets\.(\d+)\.(.+)")
_DIFFUSERS_IN_CONV = re.compile(r"adapter\.body\.(\d+)\.in_conv\.(.+)")
_BODY = re.compile(r"body\.(\d+)\.")


def is_t2i_adapter(state_dict: Mapping[str, Tensor]) -> bool:
    return "body.0.block1.weight" in state_dict or "adapter.body.0.resnets.0.block1.weight" in state_dict


def _conv(weight: Tensor, stride: int = 1) -> Conv2d:
    out_c, in_c, k = int(weight.shape[0]), int(weight.shape[1]), int(weight.shape[2])
    return Conv2d(in_c, out_c, k, stride=stride, padding=k // 2)


class AdapterBlock(nn.Module):
    """`body.N`: optional downsampling and `in_conv`, then `x + block2(relu(block1(x)))` (+ `skep`)."""

    def __init__(self, weights: Mapping[str, Tensor], prefix: str, down: bool):
        super().__init__()
        self.down = down
        if f"{prefix}down_opt.op.weight" in weights:
            self.down_opt = nn.Module()
            self.down_opt.op = _conv(weights[f"{prefix}down_opt.op.weight"], stride=2)
        if f"{prefix}in_conv.weight" in weights:
            self.in_conv = _conv(weights[f"{prefix}in_conv.weight"])
        self.block1 = _conv(weights[f"{prefix}block1.weight"])
        self.block2 = _conv(weights[f"{prefix}block2.weight"])
        if f"{prefix}skep.weight" in weights:
            self.skep = _conv(weights[f"{prefix}skep.weight"])

    def forward(self, x: Tensor) -> Tensor:
        if self.down:
            x = self.down_opt.op(x) if hasattr(self, "down_opt") else F.avg_pool2d(x, 2, 2)
        if hasattr(self, "in_conv"):
            x = self.in_conv(x)
        h = self.block2(F.relu(self.block1(x)))
        return h + (self.skep(x) if hasattr(self, "skep") else x)


class T2IAdapterModel(nn.Module):
    """The full adapter, built from a state dict's shapes.

    Attributes:
        levels: number of feature maps (UNet levels).
        nums_rb: residual blocks per level.
        hint_channels: channels of the hint image (3, or 1 for greyscale adapters such as sketch).
    """

    def __init__(self, weights: Mapping[str, Tensor]):
        super().__init__()
        blocks = sorted({int(m[1]) for key in weights if (m := _BODY.match(key))})
        widths = [int(weights[f"body.{n}.block1.weight"].shape[0]) for n in blocks]
        self.conv_in = _conv(weights["conv_in.weight"])
        self.hint_channels = int(weights["conv_in.weight"].shape[1]) // 64
        changes = [n for n in blocks if n and widths[n] != widths[n - 1]]
        # Levels are runs of blocks; every level after the first starts with a downsampling block.
        downs = {n for n in blocks if f"body.{n}.down_opt.op.weight" in weights} | set(changes)
        self.nums_rb = min(downs) if downs else len(blocks)
        self.levels = len(blocks) // self.nums_rb
        self.body = nn.ModuleList(AdapterBlock(weights, f"body.{n}.", down=n > 0 and n % self.nums_rb == 0)
                                  for n in blocks)

    def forward(self, hint: Tensor) -> list[Tensor]:
        x = self.conv_in(F.pixel_unshuffle(hint, 8))
        features = []
        for level in range(self.levels):
            for block in self.body[level * self.nums_rb:(level + 1) * self.nums_rb]:
                x = block(x)
            features.append(x)
        return features


def convert_diffusers_adapter(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """diffusers `T2IAdapter` (FullAdapter) names -> TencentARC's."""
    blocks_per_level = len({m[2] for key in state_dict if (m := _DIFFUSERS_BLOCK.fullmatch(key)) and m[1] == "0"})
    converted = {}
    for key, tensor in state_dict.items():
        if m := _DIFFUSERS_BLOCK.fullmatch(key):
            converted[f"body.{int(m[1]) * blocks_per_level + int(m[2])}.{m[3]}"] = tensor
        elif m := _DIFFUSERS_IN_CONV.fullmatch(key):
            converted[f"body.{int(m[1]) * blocks_per_level}.in_conv.{m[2]}"] = tensor
        elif key.startswith("adapter."):
            converted[key[len("adapter."):]] = tensor
    return converted


class T2IAdapter(ControlBase):
    """A T2I-Adapter as a CONTROL_NET value: features computed once per hint, added to input blocks."""

    compression_ratio = 8

    def __init__(self, adapter: T2IAdapterModel, devices: Any):
        super().__init__()
        self.adapter = adapter
        self.devices = devices
        self.num_res_blocks = 2  # SD1/SD2 UNets; pre_run reads the model's own
        self.features: list[Tensor] | None = None

    def copy(self) -> T2IAdapter:
        return self.copy_to(T2IAdapter(self.adapter, self.devices))

    def torch_modules(self) -> list[nn.Module]:
        return [self.adapter]

    def pre_run(self, model: Any, percent_to_timestep_function: Any = None) -> None:
        super().pre_run(model, percent_to_timestep_function)
        config = getattr(getattr(model, "unet", None), "config", None)
        self.num_res_blocks = getattr(config, "num_res_blocks", self.num_res_blocks)

    def cleanup(self) -> None:
        self.features = None
        super().cleanup()

    def _features(self, x: Tensor) -> list[Tensor]:
        # The adapter's input must be a multiple of 64 (unshuffle by 8, then three halvings).
        height, width = x.shape[2] * 8, x.shape[3] * 8
        if self.features is None or tuple(self.features[0].shape[-2:]) != tuple(x.shape[-2:]):
            device, dtype = self.devices.device, self.devices.compute_dtype
            self.devices.load(self)
            hint = resize_hint(self.cond_hint_original.float(), height, width)
            if self.adapter.hint_channels == 1 and hint.shape[1] != 1:
                hint = hint[:, :3].mean(dim=1, keepdim=True)
            with self.devices.inference():
                self.features = self.adapter(hint.to(device, dtype))
        return self.features

    def residuals(self, x_noisy: Tensor, t: Tensor, cond: dict, batched_number: int) -> dict[str, list]:
        per_level: list[Tensor | None] = []
        for feature in self._features(x_noisy):
            per_level += [None] * self.num_res_blocks + [broadcast_hint(feature, x_noisy.shape[0], batched_number)
                                                         .to(x_noisy.dtype) * self.strength]
        return {"input": _by_input_block(per_level)}


def _by_input_block(per_level: list[Tensor | None]) -> list[Tensor | None]:
    """Entries in the order the UNet pops them (last element = first input block).

    `per_level` lists, for each level, n Nones then that level's features; the UNet's input
    blocks are conv_in + n ResBlocks at level 0, then downsampler + n ResBlocks per level, so
    entry k of `per_level` belongs to input block k.
    """
    return per_level[::-1]


def t2i_adapter_from_state_dict(state_dict: Mapping[str, Tensor], devices: Any, source: Path | str) -> T2IAdapter:
    weights = {key: state_dict[key] for key in state_dict}
    if "adapter.conv_in.weight" in weights:
        weights = convert_diffusers_adapter(weights)
    if "conv_in.weight" not in weights:
        raise ValueError(f"{source}: a T2I-Adapter without conv_in.weight (light/style adapters are not supported)")
    with torch.device("meta"):
        adapter = T2IAdapterModel(weights)
    adapter.load_state_dict({k: v for k, v in weights.items() if k in adapter.state_dict()}, strict=True, assign=True)
    return T2IAdapter(adapter.eval().requires_grad_(False), devices)
