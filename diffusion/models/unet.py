"""The Stable Diffusion 1.x/2.x (and SDXL-shaped) UNet, in the original ldm key layout.

Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion Models"
(`ldm/modules/diffusionmodules/openaimodel.py`, after Dhariwal & Nichol 2021). Attribute
paths are the `model.diffusion_model.` keys of an SD checkpoint: `time_embed.{0,2}`,
`label_emb.0.{0,2}` (class/size conditioning, SDXL), `input_blocks.N.M`, `middle_block.{0,1,2}`,
`output_blocks.N.M`, `out.{0,2}`. ResBlocks keep `in_layers.{0,2}`, `emb_layers.1`,
`out_layers.{0,3}` and `skip_connection`; downsamplers `op`, upsamplers `conv`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffusion.models.attention import SpatialTransformer
from diffusion.models.layers import Linear, conv1x1, conv3x3, group_norm32


@dataclass(frozen=True)
class UNetConfig:
    """Shape of an ldm `UNetModel`; detected from a state dict by `diffusion.loading.detect`.

    Head counts are not stored in the weights. The SD1 family fixes `num_heads = 8`; SD2 and
    SDXL fix `num_head_channels = 64` (comfy-compat §11.4). Exactly one of the two is > 0.

    Attributes:
        in_channels: latent channels in (4; 9 for inpainting models).
        out_channels: channels predicted.
        model_channels: width of the first level.
        channel_mult: width multiplier per resolution level.
        num_res_blocks: ResBlocks per level on the way down (one more on the way up).
        transformer_depth: transformer blocks per level (0: no attention at that level).
        transformer_depth_middle: transformer blocks in `middle_block.1`.
        context_dim: width of the text conditioning (768 SD1, 1024 SD2).
        num_heads: fixed head count, or -1.
        num_head_channels: fixed head width, or -1.
        use_linear_in_transformer: linear (SD2) instead of 1×1 conv (SD1) `proj_in`/`proj_out`.
        adm_in_channels: width of the vector conditioning `y` (SDXL), None without.
    """

    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    transformer_depth: tuple[int, ...] = (1, 1, 1, 0)
    transformer_depth_middle: int = 1
    context_dim: int = 768
    num_heads: int = 8
    num_head_channels: int = -1
    use_linear_in_transformer: bool = False
    adm_in_channels: int | None = None

    def heads(self, channels: int) -> tuple[int, int]:
        """(heads, head width) of the transformer at a level of `channels` width."""
        if self.num_head_channels > 0:
            return channels // self.num_head_channels, self.num_head_channels
        return self.num_heads, channels // self.num_heads


def timestep_embedding(timesteps: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps, cosines first as ldm.

    Args:
        timesteps: `[B]`.
        dim: embedding width (even).

    Returns:
        `[B, dim]` float32.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32,
                                                           device=timesteps.device) / half)
    args = timesteps[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """Residual block conditioned on the timestep embedding (added after the first conv)."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int):
        super().__init__()
        self.in_layers = nn.Sequential(group_norm32(channels, eps=1e-5), nn.SiLU(), conv3x3(channels, out_channels))
        self.emb_layers = nn.Sequential(nn.SiLU(), Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(group_norm32(out_channels, eps=1e-5), nn.SiLU(), nn.Dropout(0.0),
                                        conv3x3(out_channels, out_channels))
        self.skip_connection = nn.Identity() if channels == out_channels else conv1x1(channels, out_channels)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).to(h.dtype)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.op = conv3x3(channels, channels, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = conv3x3(channels, channels)

    def forward(self, x: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        # An explicit size lets odd latent sizes meet their skip connection again.
        x = F.interpolate(x, size=size, mode="nearest") if size else F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x)


class TimestepSequential(nn.Sequential):
    """One `input_blocks.N` / `output_blocks.N` entry: layers that take what they need."""

    def forward(self, x: Tensor, emb: Tensor, context: Tensor | None,
                output_size: tuple[int, int] | None = None) -> Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, Upsample):
                x = layer(x, output_size)
            else:
                x = layer(x)
        return x


def _apply_control(h: Tensor, control: dict[str, list[Tensor | None]] | None, name: str) -> Tensor:
    """Add the next residual of a ControlNet/T2I adapter (lists are consumed from the end)."""
    if control is None or not control.get(name):
        return h
    residual = control[name].pop()
    return h if residual is None else h + residual.to(h)


def spatial_transformer(config: UNetConfig, channels: int, depth: int) -> SpatialTransformer:
    """A cross-attention block of `depth` layers with the family's head rule (`config.heads`)."""
    heads, dim_head = config.heads(channels)
    return SpatialTransformer(channels, heads, dim_head, depth, config.context_dim, config.use_linear_in_transformer)


def encoder_blocks(config: UNetConfig) -> tuple[nn.ModuleList, TimestepSequential, list[int]]:
    """The UNet's encoder half: `input_blocks` and `middle_block` (original ldm keys).

    Shared by the UNet and ControlNet (whose trainable copy has exactly these blocks).

    Returns:
        The input blocks, the middle block, and the output channels of each input block (the
        UNet's skip connections, ControlNet's zero convolutions).
    """
    mc = config.model_channels
    emb_dim = mc * 4
    input_blocks = nn.ModuleList([TimestepSequential(conv3x3(config.in_channels, mc))])
    channels = [mc]
    ch = mc
    levels = len(config.channel_mult)
    for level, mult in enumerate(config.channel_mult):
        for _ in range(config.num_res_blocks):
            layers: list[nn.Module] = [ResBlock(ch, emb_dim, mult * mc)]
            ch = mult * mc
            if config.transformer_depth[level] > 0:
                layers.append(spatial_transformer(config, ch, config.transformer_depth[level]))
            input_blocks.append(TimestepSequential(*layers))
            channels.append(ch)
        if level != levels - 1:
            input_blocks.append(TimestepSequential(Downsample(ch)))
            channels.append(ch)

    middle: list[nn.Module] = [ResBlock(ch, emb_dim, ch)]
    if config.transformer_depth_middle > 0:
        middle.append(spatial_transformer(config, ch, config.transformer_depth_middle))
    middle.append(ResBlock(ch, emb_dim, ch))
    return input_blocks, TimestepSequential(*middle), channels


class UNetModel(nn.Module):
    """Predicts noise (or v) for a latent, given the timestep and the text context."""

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = config
        mc = config.model_channels
        emb_dim = mc * 4
        self.time_embed = nn.Sequential(Linear(mc, emb_dim), nn.SiLU(), Linear(emb_dim, emb_dim))
        if config.adm_in_channels is not None:
            self.label_emb = nn.Sequential(nn.Sequential(
                Linear(config.adm_in_channels, emb_dim), nn.SiLU(), Linear(emb_dim, emb_dim)))

        self.input_blocks, self.middle_block, skip_channels = encoder_blocks(config)
        ch = skip_channels[-1]

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            for index in range(config.num_res_blocks + 1):
                layers = [ResBlock(ch + skip_channels.pop(), emb_dim, mc * mult)]
                ch = mc * mult
                if config.transformer_depth[level] > 0:
                    layers.append(spatial_transformer(config, ch, config.transformer_depth[level]))
                if level and index == config.num_res_blocks:
                    layers.append(Upsample(ch))
                self.output_blocks.append(TimestepSequential(*layers))

        self.out = nn.Sequential(group_norm32(ch, eps=1e-5), nn.SiLU(), conv3x3(mc, config.out_channels))

    def forward(self, x: Tensor, timesteps: Tensor, context: Tensor | None = None, y: Tensor | None = None,
                control: dict[str, list[Tensor | None]] | None = None,
                transformer_options: dict[str, Any] | None = None) -> Tensor:
        """Run the UNet.

        Args:
            x: latent input `[B, in_channels, h, w]`.
            timesteps: `[B]` discrete (possibly fractional) timesteps 0..999.
            context: text conditioning `[B, T, context_dim]`.
            y: vector conditioning `[B, adm_in_channels]` for models with `label_emb`.
            control: residuals `{"input"|"middle"|"output": [Tensor | None, ...]}` from a
                ControlNet, consumed from the end of each list (the list is not modified).
            transformer_options: reserved for attention patches; passed through.

        Returns:
            `[B, out_channels, h, w]` in the dtype of `x`.
        """
        control = {name: list(residuals) for name, residuals in control.items()} if control else None
        weight_dtype = self.time_embed[0].weight.dtype
        compute_dtype = x.dtype if x.is_floating_point() else weight_dtype
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels).to(compute_dtype))
        if self.config.adm_in_channels is not None:
            if y is None:
                raise ValueError("this UNet needs the vector conditioning `y` (adm_in_channels)")
            emb = emb + self.label_emb(y.to(compute_dtype))
        if context is not None:
            context = context.to(compute_dtype)

        h = x.to(compute_dtype)
        skips = []
        for block in self.input_blocks:
            h = block(h, emb, context)
            h = _apply_control(h, control, "input")
            skips.append(h)
        h = self.middle_block(h, emb, context)
        h = _apply_control(h, control, "middle")
        for block in self.output_blocks:
            skip = _apply_control(skips.pop(), control, "output")
            h = torch.cat([h, skip], dim=1)
            output_size = tuple(skips[-1].shape[-2:]) if skips else None
            h = block(h, emb, context, output_size)
        return self.out(h).to(x.dtype)
