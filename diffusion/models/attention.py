"""Attention blocks shared by the UNet and the VAE, in the original ldm key layout.

* `CrossAttention` / `BasicTransformerBlock` / `SpatialTransformer`: the transformer of the
  Latent Diffusion UNet (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent
  Diffusion Models", `ldm/modules/attention.py`): keys `norm`, `proj_in`,
  `transformer_blocks.N.{attn1,attn2,ff,norm1,norm2,norm3}`, `proj_out`.
* `AttnBlock`: the single-head spatial self-attention of the VAE (`mid.attn_1`), keys
  `norm`, `q`, `k`, `v`, `proj_out`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from diffusion.models.layers import LayerNorm, Linear, conv1x1, group_norm32


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, heads: int,
                                 mask: Tensor | None = None) -> Tensor:
    """Multi-head attention over token sequences (Vaswani et al. 2017).

    Args:
        q: `[B, Tq, heads * d]`.
        k, v: `[B, Tk, heads * d]`.
        heads: number of heads the channel dimension is split into.
        mask: optional boolean or additive mask broadcastable to `[B, heads, Tq, Tk]`.

    Returns:
        `[B, Tq, heads * d]`.
    """
    batch, _, inner = q.shape
    dim_head = inner // heads
    q, k, v = (t.view(batch, -1, heads, dim_head).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2).reshape(batch, -1, heads * dim_head)


class CrossAttention(nn.Module):
    """Attention of `query_dim` tokens over a context (`context_dim`), self-attention without one."""

    def __init__(self, query_dim: int, context_dim: int | None, heads: int, dim_head: int):
        super().__init__()
        inner = heads * dim_head
        context_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.to_q = Linear(query_dim, inner, bias=False)
        self.to_k = Linear(context_dim, inner, bias=False)
        self.to_v = Linear(context_dim, inner, bias=False)
        # `to_out.1` is a dropout in the original; keeping a ModuleList keeps the key `to_out.0`.
        self.to_out = nn.ModuleList([Linear(inner, query_dim), nn.Dropout(0.0)])

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """x: `[B, T, query_dim]`, context: `[B, S, context_dim]` -> `[B, T, query_dim]`."""
        context = x if context is None else context
        out = scaled_dot_product_attention(self.to_q(x), self.to_k(context), self.to_v(context), self.heads)
        return self.to_out[0](out)


class GEGLU(nn.Module):
    """Gated GELU projection (Shazeer 2020, "GLU Variants Improve Transformer")."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = Linear(dim_in, dim_out * 2)

    def forward(self, x: Tensor) -> Tensor:
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * F.gelu(gate)


class FeedForward(nn.Module):
    """`net.0` GEGLU, `net.1` dropout, `net.2` output projection; inner width 4 × dim."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        inner = dim * mult
        self.net = nn.Sequential(GEGLU(dim, inner), nn.Dropout(0.0), Linear(inner, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Self-attention, cross-attention and feed-forward, each pre-normed with a residual."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None):
        super().__init__()
        self.attn1 = CrossAttention(dim, None, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, context_dim, heads, dim_head)
        self.norm1 = LayerNorm(dim)
        self.norm2 = LayerNorm(dim)
        self.norm3 = LayerNorm(dim)

    def forward(self, x: Tensor, context: Tensor | None) -> Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """Transformer over the pixels of a feature map, conditioned on a context.

    SD1 checkpoints project in and out with 1×1 convolutions, SD2/SDXL with linear layers
    (`use_linear`); the weights differ only in the two trailing singleton dimensions.
    """

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int,
                 context_dim: int | None, use_linear: bool):
        super().__init__()
        inner = heads * dim_head
        self.use_linear = use_linear
        self.norm = group_norm32(channels)
        self.proj_in = Linear(channels, inner) if use_linear else conv1x1(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, heads, dim_head, context_dim) for _ in range(depth)
        )
        self.proj_out = Linear(inner, channels) if use_linear else conv1x1(inner, channels)

    def forward(self, x: Tensor, context: Tensor | None) -> Tensor:
        """x: `[B, C, H, W]`, context: `[B, S, context_dim]` -> `[B, C, H, W]`."""
        batch, _, height, width = x.shape
        residual = x
        x = self.norm(x)
        if not self.use_linear:
            x = self.proj_in(x)
        x = x.flatten(2).transpose(1, 2)
        if self.use_linear:
            x = self.proj_in(x)
        for block in self.transformer_blocks:
            x = block(x, context)
        if self.use_linear:
            x = self.proj_out(x)
        x = x.transpose(1, 2).reshape(batch, -1, height, width)
        if not self.use_linear:
            x = self.proj_out(x)
        return x + residual


class AttnBlock(nn.Module):
    """Single-head self-attention over the pixels of a VAE feature map (`mid.attn_1`)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm32(channels)
        self.q = conv1x1(channels, channels)
        self.k = conv1x1(channels, channels)
        self.v = conv1x1(channels, channels)
        self.proj_out = conv1x1(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        """x: `[B, C, H, W]` -> `[B, C, H, W]`."""
        batch, channels, height, width = x.shape
        h = self.norm(x)
        q, k, v = (conv(h).flatten(2).transpose(1, 2) for conv in (self.q, self.k, self.v))
        out = scaled_dot_product_attention(q, k, v, heads=1)
        out = out.transpose(1, 2).reshape(batch, channels, height, width)
        return x + self.proj_out(out)


__all__ = [
    "AttnBlock", "BasicTransformerBlock", "CrossAttention", "FeedForward",
    "SpatialTransformer", "scaled_dot_product_attention",
]
