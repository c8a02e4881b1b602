"""Real-ESRGAN's compact network SRVGGNetCompact (Wang et al. 2021; e.g. realesr-general-x4v3).

Keys `body.N.weight`/`.bias`: a conv (image -> nf), PReLU, `num_conv` × (conv nf -> nf, PReLU),
and a last conv to `out_nc · s²` channels; `pixel_shuffle(s)` then adds the nearest-upsampled
input, so the network learns the residual over nearest-neighbour upscaling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor, nn


class SRVGGNetCompact(nn.Module):
    def __init__(self, in_nc: int = 3, out_nc: int = 3, nf: int = 64, num_conv: int = 16, scale: int = 4):
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [nn.Conv2d(in_nc, nf, 3, 1, 1), nn.PReLU(num_parameters=nf)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(nf, nf, 3, 1, 1), nn.PReLU(num_parameters=nf)]
        layers.append(nn.Conv2d(nf, out_nc * scale * scale, 3, 1, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = F.pixel_shuffle(self.body(x), self.scale)
        return out + F.interpolate(x, scale_factor=self.scale, mode="nearest")


def is_srvgg(state_dict: Mapping[str, Tensor]) -> bool:
    return ("body.0.weight" in state_dict and "body.1.weight" in state_dict
            and state_dict["body.0.weight"].ndim == 4 and state_dict["body.1.weight"].ndim == 1)


def srvgg_from_state_dict(state_dict: Mapping[str, Tensor]) -> SRVGGNetCompact:
    """Build the compact network with a state dict's shapes and load it."""
    indices = sorted({int(key.split(".")[1]) for key in state_dict if key.startswith("body.")})
    first, last = state_dict["body.0.weight"], state_dict[f"body.{indices[-1]}.weight"]
    in_nc, nf = int(first.shape[1]), int(first.shape[0])
    num_conv = (len(indices) - 3) // 2
    scale = math.isqrt(int(last.shape[0]) // in_nc)
    model = SRVGGNetCompact(in_nc, in_nc, nf, num_conv, scale)
    model.load_state_dict(dict(state_dict), strict=True)
    return model
