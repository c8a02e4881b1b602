"""The KL-regularised autoencoder of Stable Diffusion 1.x/2.x, in the original ldm key layout.

Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion Models"
(`ldm/models/autoencoder.py`, `ldm/modules/diffusionmodules/model.py`). Attribute paths
are the `first_stage_model.` keys of an SD checkpoint: `encoder.conv_in`,
`encoder.down.N.block.M.{norm1,conv1,norm2,conv2,nin_shortcut}`, `encoder.down.N.downsample.conv`,
`encoder.mid.{block_1,attn_1,block_2}`, `encoder.norm_out`, `encoder.conv_out`, `quant_conv`,
`post_quant_conv`, and the mirrored `decoder.up.N.block.M`, `decoder.up.N.upsample.conv`.

Pixels here are NCHW in -1..1; the conversions from and to IMAGE tensors live in
`diffusion.vae_model`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffusion.models.attention import AttnBlock
from diffusion.models.layers import conv1x1, conv3x3, group_norm32


@dataclass(frozen=True)
class VAEConfig:
    """Shape of an ldm `AutoencoderKL` (SD1/SD2 defaults).

    Attributes:
        ch: channels of the first resolution level.
        ch_mult: channel multiplier per level; `len(ch_mult) - 1` halvings of the resolution.
        num_res_blocks: ResNet blocks per encoder level (the decoder has one more).
        z_channels: latent channels.
        in_channels: image channels.
    """

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    z_channels: int = 4
    in_channels: int = 3

    @property
    def downscale_ratio(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv twice with a residual; `nin_shortcut` when the width changes."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = group_norm32(in_channels)
        self.conv1 = conv3x3(in_channels, out_channels)
        self.norm2 = group_norm32(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.nin_shortcut = conv1x1(in_channels, out_channels) if in_channels != out_channels else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return skip + h


class Downsample(nn.Module):
    """Stride-2 3×3 convolution after padding only right and bottom (as the original)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = conv3x3(channels, channels, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour 2× upsampling followed by a 3×3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = conv3x3(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class MidBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class Level(nn.Module):
    """One resolution level: `block.M` and an optional `downsample` or `upsample`."""

    def __init__(self, blocks: list[ResnetBlock], resample: nn.Module | None, name: str):
        super().__init__()
        self.block = nn.ModuleList(blocks)
        # The original keeps an empty `attn` list (no attention at SD's resolutions).
        self.attn = nn.ModuleList()
        if resample is not None:
            self.add_module(name, resample)
        self.resample_name = name if resample is not None else None

    def forward(self, x: Tensor) -> Tensor:
        for block in self.block:
            x = block(x)
        if self.resample_name is not None:
            x = getattr(self, self.resample_name)(x)
        return x


class Encoder(nn.Module):
    """Image `[B, 3, H, W]` -> posterior moments `[B, 2·z, H/f, W/f]` (before `quant_conv`)."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        ch = config.ch
        self.conv_in = conv3x3(config.in_channels, ch)
        levels = []
        block_in = ch
        for index, mult in enumerate(config.ch_mult):
            block_out = ch * mult
            blocks = [ResnetBlock(block_in if i == 0 else block_out, block_out)
                      for i in range(config.num_res_blocks)]
            last = index == len(config.ch_mult) - 1
            levels.append(Level(blocks, None if last else Downsample(block_out), "downsample"))
            block_in = block_out
        self.down = nn.ModuleList(levels)
        self.mid = MidBlock(block_in)
        self.norm_out = group_norm32(block_in)
        self.conv_out = conv3x3(block_in, 2 * config.z_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_in(x)
        for level in self.down:
            x = level(x)
        x = self.mid(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class Decoder(nn.Module):
    """Latent `[B, z, h, w]` -> image `[B, 3, h·f, w·f]` in roughly -1..1."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        ch = config.ch
        block_in = ch * config.ch_mult[-1]
        self.conv_in = conv3x3(config.z_channels, block_in)
        self.mid = MidBlock(block_in)
        levels: list[Level] = []
        for index in reversed(range(len(config.ch_mult))):
            block_out = ch * config.ch_mult[index]
            blocks = [ResnetBlock(block_in if i == 0 else block_out, block_out)
                      for i in range(config.num_res_blocks + 1)]
            levels.insert(0, Level(blocks, Upsample(block_out) if index else None, "upsample"))
            block_in = block_out
        # `up.0` is the full-resolution level, as in the checkpoint; it runs last.
        self.up = nn.ModuleList(levels)
        self.norm_out = group_norm32(block_in)
        self.conv_out = conv3x3(block_in, config.in_channels)

    def forward(self, z: Tensor) -> Tensor:
        x = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            x = level(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class AutoencoderKL(nn.Module):
    """The SD VAE: `encoder`, `quant_conv`, `post_quant_conv`, `decoder`."""

    def __init__(self, config: VAEConfig = VAEConfig()):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quant_conv = conv1x1(2 * config.z_channels, 2 * config.z_channels)
        self.post_quant_conv = conv1x1(config.z_channels, config.z_channels)

    def encode_moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Diagonal Gaussian posterior of an image.

        Args:
            x: `[B, 3, H, W]` in -1..1, H and W multiples of the downscale ratio.

        Returns:
            `(mean, logvar)`, each `[B, z, H/f, W/f]`; logvar clamped to -30..20 as the original.
        """
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(self, x: Tensor) -> Tensor:
        """The posterior mean (the deterministic latent ComfyUI uses): `[B, 3, H, W]` -> `[B, z, h, w]`."""
        return self.encode_moments(x)[0]

    def sample(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A draw from the posterior (for training): `[B, 3, H, W]` -> `[B, z, h, w]`."""
        mean, logvar = self.encode_moments(x)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * logvar) * noise

    def decode(self, z: Tensor) -> Tensor:
        """`[B, z, h, w]` -> `[B, 3, h·f, w·f]`, not clamped."""
        return self.decoder(self.post_quant_conv(z))

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))
