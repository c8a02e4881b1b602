"""The Tiny AutoEncoder for Stable Diffusion's decoder (TAESD, Ollin Boer Bohan 2023), for step previews.

Attribute paths are the keys of the published `taesd_decoder.safetensors` (an nn.Sequential), so
the weights load by name. It decodes model-space latents (already times the scale factor) to
RGB in 0..1.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def _conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    """Soft clamp of the input latent to about ±3."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """Residual block: three 3×3 convolutions plus the input, then ReLU."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(n_in, n_out), nn.ReLU(), _conv(n_out, n_out), nn.ReLU(), _conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(self.conv(x) + self.skip(x))


def taesd_decoder(latent_channels: int = 4) -> nn.Sequential:
    """The TAESD decoder: three ×2 upsampling stages of residual blocks, 64 channels wide."""
    layers: list[nn.Module] = [Clamp(), _conv(latent_channels, 64), nn.ReLU()]
    for _ in range(3):
        layers += [Block(64, 64), Block(64, 64), Block(64, 64), nn.Upsample(scale_factor=2), _conv(64, 64, bias=False)]
    layers += [Block(64, 64), _conv(64, 3)]
    return nn.Sequential(*layers)


def load_taesd_decoder(path: Path, latent_channels: int = 4) -> nn.Sequential:
    """A TAESD decoder with the weights of a .safetensors file (keys checked strictly; errors name the file)."""
    from safetensors.torch import load_file

    decoder = taesd_decoder(latent_channels)
    try:
        decoder.load_state_dict(load_file(str(path)), strict=True)
    except (RuntimeError, OSError) as error:
        raise ValueError(f"{path}: not a TAESD decoder ({error})") from error
    return decoder.eval()
