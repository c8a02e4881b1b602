"""ESRGAN's RRDBNet (Wang et al. 2018, "ESRGAN"; Real-ESRGAN, Wang et al. 2021), in BasicSR's key layout.

`conv_first`, `body.N.rdb{1,2,3}.conv{1..5}`, `conv_body`, `conv_up{1,2,...}`, `conv_hr`,
`conv_last`. Each residual dense block (RDB) concatenates its input with every earlier
conv's output (growth `gc` channels each) and adds `0.2 ×` its result to its input; three
RDBs make one RRDB, again with a 0.2 residual. Upsampling is nearest ×2 + conv per step.
Real-ESRGAN's ×2 and ×1 models first fold the image with `pixel_unshuffle` (by 2 or 4), seen
as `conv_first` taking 4 or 16 times the image channels.

The original ESRGAN repository's keys (`model.0`, `model.1.sub.N.RDBk.convj.0`, `model.3`,
...; e.g. 4x-UltraSharp) are renamed to these by `convert_old_esrgan`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_OLD_RDB = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)")
_OLD_TOP = re.compile(r"model\.(\d+)\.(weight|bias)")


def _lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, negative_slope=0.2)


class ResidualDenseBlock(nn.Module):
    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            features.append(_lrelu(conv(torch.cat(features, dim=1))))
        return self.conv5(torch.cat(features, dim=1)) * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(nf, gc)
        self.rdb2 = ResidualDenseBlock(nf, gc)
        self.rdb3 = ResidualDenseBlock(nf, gc)

    def forward(self, x: Tensor) -> Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN generator.

    Args:
        in_nc / out_nc: image channels in and out.
        nf: feature width; gc: growth channels per dense conv; nb: number of RRDBs.
        upsample_steps: ×2 upsamplings (2 for ×4 models).
        unshuffle: pixel-unshuffle factor applied first (1, 2 or 4).
    """

    def __init__(self, in_nc: int = 3, out_nc: int = 3, nf: int = 64, gc: int = 32, nb: int = 23,
                 upsample_steps: int = 2, unshuffle: int = 1):
        super().__init__()
        self.unshuffle = unshuffle
        self.scale = 2 ** upsample_steps // unshuffle
        self.conv_first = nn.Conv2d(in_nc * unshuffle * unshuffle, nf, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(nf, gc) for _ in range(nb)])
        self.conv_body = nn.Conv2d(nf, nf, 3, 1, 1)
        for step in range(1, upsample_steps + 1):
            self.add_module(f"conv_up{step}", nn.Conv2d(nf, nf, 3, 1, 1))
        self.upsample_steps = upsample_steps
        self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, out_nc, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        feat = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        for step in range(1, self.upsample_steps + 1):
            feat = _lrelu(getattr(self, f"conv_up{step}")(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(_lrelu(self.conv_hr(feat)))


def is_old_esrgan(state_dict: Mapping[str, Tensor]) -> bool:
    return "model.0.weight" in state_dict and any(k.startswith("model.1.sub.") for k in state_dict)


def convert_old_esrgan(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Original ESRGAN keys -> BasicSR's.

    The top-level list is `[conv_first, shortcut(sub), (upsample, conv, lrelu) × n, conv_hr, lrelu, conv_last]`,
    so the upsampling convs sit at 3, 6, ..., conv_hr at 3n + 2 and conv_last at 3n + 4.
    """
    top = sorted({int(m[1]) for key in state_dict if (m := _OLD_TOP.fullmatch(key))})
    last = top[-1]
    steps = (last - 4) // 3
    names = {0: "conv_first", last - 2: "conv_hr", last: "conv_last"}
    names.update({3 * k: f"conv_up{k}" for k in range(1, steps + 1)})
    sub = sorted({int(key.split(".")[3]) for key in state_dict if key.startswith("model.1.sub.")})
    converted = {}
    for key, tensor in state_dict.items():
        if m := _OLD_RDB.fullmatch(key):
            converted[f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"] = tensor
        elif key.startswith(f"model.1.sub.{sub[-1]}."):
            converted["conv_body." + key.rsplit(".", 1)[1]] = tensor
        elif (m := _OLD_TOP.fullmatch(key)) and int(m[1]) in names:
            converted[f"{names[int(m[1])]}.{m[2]}"] = tensor
    return converted


def rrdbnet_from_state_dict(state_dict: Mapping[str, Tensor]) -> RRDBNet:
    """Build an RRDBNet with the shapes of a BasicSR-layout state dict and load it."""
    first = state_dict["conv_first.weight"]
    nf = int(first.shape[0])
    out_nc = int(state_dict["conv_last.weight"].shape[0])
    gc = int(state_dict["body.0.rdb1.conv1.weight"].shape[0])
    nb = len({key.split(".")[1] for key in state_dict if key.startswith("body.")})
    steps = len({key.split(".")[0] for key in state_dict if key.startswith("conv_up")})
    folded = int(first.shape[1]) // out_nc
    unshuffle = {1: 1, 4: 2, 16: 4}.get(folded)
    if unshuffle is None:
        raise ValueError(f"RRDBNet conv_first takes {first.shape[1]} channels for {out_nc}-channel images")
    model = RRDBNet(out_nc, out_nc, nf, gc, nb, steps, unshuffle)
    model.load_state_dict(dict(state_dict), strict=True)
    return model
