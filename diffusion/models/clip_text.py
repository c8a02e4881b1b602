"""CLIP text transformers in the two checkpoint layouts Stable Diffusion uses.

The architecture is CLIP's text tower (Radford et al. 2021, "Learning Transferable Visual
Models From Natural Language Supervision"): token + learned position embeddings, pre-norm
transformer layers with causal self-attention and an MLP, a final layer norm, and a pooled
vector read at the end-of-text token (optionally projected).

* `CLIPTextModel`: the Hugging Face transformers layout that SD1.x checkpoints store under
  `cond_stage_model.transformer.` (`text_model.embeddings.token_embedding.weight`,
  `text_model.encoder.layers.N.self_attn.q_proj.weight`, `text_model.final_layer_norm`, ...);
  CLIP ViT-L/14 uses the `quick_gelu` activation.
* `OpenCLIPTextModel`: the OpenCLIP layout (Cherti et al. 2023, "Reproducible scaling laws
  for contrastive language-image learning") that SD2.x checkpoints store under
  `cond_stage_model.model.` (`token_embedding.weight`, `positional_embedding`,
  `transformer.resblocks.N.attn.in_proj_weight`, `ln_final`, `text_projection`); ViT-H/14
  uses exact GELU.

Attribute paths are the checkpoint keys after the prefix, so weights load by name. The sizes
come from the tensors (`clip_text_config_from_state_dict`); the head count is not stored and
follows the CLIP convention of 64 channels per head (comfy-compat §11.4).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffusion.models.attention import scaled_dot_product_attention
from diffusion.models.layers import LayerNorm, Linear

HEAD_WIDTH = 64
HF_LAYOUT = "hf"
OPEN_CLIP_LAYOUT = "open_clip"
# Keys some checkpoints carry that the forward pass does not need.
_UNUSED_KEYS = ("text_model.embeddings.position_ids", "logit_scale", "attn_mask", "embeddings.position_ids")


@dataclass(frozen=True)
class CLIPTextConfig:
    """Sizes of a CLIP text transformer.

    Attributes:
        layout: `"hf"` (`CLIPTextModel`) or `"open_clip"` (`OpenCLIPTextModel`).
        vocab_size: rows of the token embedding (49408 for every SD text encoder).
        max_positions: context length, 77.
        width: hidden size D (CLIP-L 768, OpenCLIP-H 1024).
        layers: number of transformer layers (12, 24).
        heads: attention heads (D / 64).
        mlp_width: inner width of the MLP (4·D).
        activation: `"quick_gelu"` (x·σ(1.702x), OpenAI CLIP) or `"gelu"` (OpenCLIP).
        projection_dim: output width of `text_projection`, or None when the checkpoint has no
            projection (SD1's CLIP-L): the pooled vector is then returned unprojected, as
            ComfyUI's identity-initialised projection does.
    """

    layout: str = HF_LAYOUT
    vocab_size: int = 49408
    max_positions: int = 77
    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp_width: int = 3072
    activation: str = "quick_gelu"
    projection_dim: int | None = None


class CLIPTextOutput(NamedTuple):
    """What a forward pass returns.

    Attributes:
        last_hidden_state: `[B, T, D]` output of the last layer after the final layer norm.
        hidden_state: `[B, T, D]` output of the requested layer (final layer norm applied when
            asked); equals `last_hidden_state` when no layer was requested.
        pooled: `[B, P]` the final-normed last-layer state at the first end token, through
            `text_projection` when the model has one.
    """

    last_hidden_state: Tensor
    hidden_state: Tensor
    pooled: Tensor


def _activation(name: str) -> Callable[[Tensor], Tensor]:
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return F.gelu
    raise ValueError(f"unknown CLIP activation {name!r}")


def _causal_mask(length: int, device: torch.device) -> Tensor:
    """`[T, T]` boolean mask: token i attends to tokens 0..i."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


class _TextTransformerBase(nn.Module):
    """The forward pass shared by both layouts; subclasses name the parts as their keys do."""

    config: CLIPTextConfig

    def _token_embedding(self) -> nn.Embedding:
        raise NotImplementedError

    def _position_embedding(self) -> Tensor:
        raise NotImplementedError

    def _layers(self) -> nn.ModuleList:
        raise NotImplementedError

    def _final_norm(self) -> nn.Module:
        raise NotImplementedError

    def _project(self, pooled: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def num_layers(self) -> int:
        return self.config.layers

    def embed_tokens(self, token_ids: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Token embeddings `[B, T, D]` of ids `[B, T]` (positions are added in `forward`)."""
        return self._token_embedding()(token_ids).to(dtype)

    def forward(self, token_ids: Tensor, input_embeds: Tensor | None = None, end_token: int = 49407,
                layer_index: int | None = None, normalize_hidden: bool = True) -> CLIPTextOutput:
        """Encode a batch of token sequences.

        Args:
            token_ids: `[B, T]` ids; they locate the end token for the pooled output.
            input_embeds: `[B, T, D]` token embeddings to use instead of looking the ids up
                (textual-inversion vectors are spliced in here); their dtype is the compute
                dtype.
            end_token: id of the end-of-text token.
            layer_index: which layer's output `hidden_state` holds; negative counts from the
                end (-1 last, -2 penultimate, as CLIP skip); None means the last layer.
            normalize_hidden: apply the final layer norm to `hidden_state` too (SD1 and SD2
                both do).

        Returns:
            `CLIPTextOutput`.
        """
        if input_embeds is None:
            input_embeds = self.embed_tokens(token_ids)
        length = input_embeds.shape[1]
        x = input_embeds + self._position_embedding()[:length].to(input_embeds)
        mask = _causal_mask(length, x.device)
        layers = self._layers()
        wanted = len(layers) - 1 if layer_index is None else layer_index % len(layers)
        hidden = x
        for index, layer in enumerate(layers):
            x = layer(x, mask)
            if index == wanted:
                hidden = x
        final_norm = self._final_norm()
        x = final_norm(x)
        hidden = final_norm(hidden) if normalize_hidden else hidden
        end_positions = (token_ids == end_token).int().argmax(dim=-1)
        pooled = x[torch.arange(x.shape[0], device=x.device), end_positions]
        return CLIPTextOutput(x, hidden, self._project(pooled))


# --- Hugging Face transformers layout (SD1.x: cond_stage_model.transformer.*) ---------------


class CLIPAttention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj = Linear(width, width)
        self.k_proj = Linear(width, width)
        self.v_proj = Linear(width, width)
        self.out_proj = Linear(width, width)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        out = scaled_dot_product_attention(self.q_proj(x), self.k_proj(x), self.v_proj(x), self.heads, mask)
        return self.out_proj(out)


class CLIPMLP(nn.Module):
    def __init__(self, width: int, mlp_width: int, activation: str):
        super().__init__()
        self.fc1 = Linear(width, mlp_width)
        self.fc2 = Linear(mlp_width, width)
        self.activation = _activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.activation(self.fc1(x)))


class CLIPEncoderLayer(nn.Module):
    def __init__(self, config: CLIPTextConfig):
        super().__init__()
        self.self_attn = CLIPAttention(config.width, config.heads)
        self.layer_norm1 = LayerNorm(config.width)
        self.mlp = CLIPMLP(config.width, config.mlp_width, config.activation)
        self.layer_norm2 = LayerNorm(config.width)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class CLIPEncoder(nn.Module):
    def __init__(self, config: CLIPTextConfig):
        super().__init__()
        self.layers = nn.ModuleList(CLIPEncoderLayer(config) for _ in range(config.layers))


class CLIPTextEmbeddings(nn.Module):
    def __init__(self, config: CLIPTextConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.position_embedding = nn.Embedding(config.max_positions, config.width)


class CLIPTextTransformer(nn.Module):
    def __init__(self, config: CLIPTextConfig):
        super().__init__()
        self.embeddings = CLIPTextEmbeddings(config)
        self.encoder = CLIPEncoder(config)
        self.final_layer_norm = LayerNorm(config.width)


class CLIPTextModel(_TextTransformerBase):
    """CLIP text encoder, transformers key layout (`text_model.*`, optional `text_projection`)."""

    def __init__(self, config: CLIPTextConfig):
        super().__init__()
        self.config = config
        self.text_model = CLIPTextTransformer(config)
        if config.projection_dim is not None:
            self.text_projection = Linear(config.width, config.projection_dim, bias=False)

    def _token_embedding(self) -> nn.Embedding:
        return self.text_model.embeddings.token_embedding

    def _position_embedding(self) -> Tensor:
        return self.text_model.embeddings.position_embedding.weight

    def _layers(self) -> nn.ModuleList:
        return self.text_model.encoder.layers

    def _final_norm(self) -> nn.Module:
        return self.text_model.final_layer_norm

    def _project(self, pooled: Tensor) -> Tensor:
        return self.text_projection(pooled) if self.config.projection_dim is not None else pooled


# --- OpenCLIP layout (SD2.x: cond_stage_model.model.*) ---------------------------------------


class OpenCLIPAttention(nn.Module):
    """`nn.MultiheadAttention`'s parameter names: packed `in_proj_weight` [3D, D] (q, k, v)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * width))
        self.out_proj = Linear(width, width)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        weight, bias = self.in_proj_weight.to(x), self.in_proj_bias.to(x)
        q, k, v = F.linear(x, weight, bias).chunk(3, dim=-1)
        return self.out_proj(scaled_dot_product_attention(q, k, v, self.heads, mask))


class OpenCLIPMLP(nn.Module):
    def __init__(self, width: int, mlp_width: int, activation: str):
        super().__init__()
        self.c_fc = Linear(width, mlp_width)
        self.c_proj = Linear(mlp_width, width)
        self.activation = _activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(self.activation(self.c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    def __init__(self, config: CLIPTextConfig):
        super().__init__()
        self.ln_1 = LayerNorm(config.width)
        self.attn = OpenCLIPAttention(config.width, config.heads)
        self.ln_2 = LayerNorm(config.width)
        self.mlp = OpenCLIPMLP(config.width, config.mlp_width, config.activation)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class OpenCLIPTransformer(nn.Module):
    def __init__(self, config: CLIPTextConfig):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(config) for _ in range(config.layers))


class OpenCLIPTextModel(_TextTransformerBase):
    """OpenCLIP text tower, open_clip key layout; `text_projection` is a `[D, P]` matrix."""

    def __init__(self, config: CLIPTextConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.width)
        self.positional_embedding = nn.Parameter(torch.empty(config.max_positions, config.width))
        self.transformer = OpenCLIPTransformer(config)
        self.ln_final = LayerNorm(config.width)
        projection_dim = config.projection_dim or config.width
        self.text_projection = nn.Parameter(torch.empty(config.width, projection_dim))

    def _token_embedding(self) -> nn.Embedding:
        return self.token_embedding

    def _position_embedding(self) -> Tensor:
        return self.positional_embedding

    def _layers(self) -> nn.ModuleList:
        return self.transformer.resblocks

    def _final_norm(self) -> nn.Module:
        return self.ln_final

    def _project(self, pooled: Tensor) -> Tensor:
        return pooled @ self.text_projection.to(pooled)


# --- configuration from tensors and loading ----------------------------------------------------


def _count_layers(keys, pattern: str) -> int:
    indices = {int(match.group(1)) for key in keys if (match := re.match(pattern, key))}
    return max(indices) + 1 if indices else 0


def _heads_for(width: int) -> int:
    if width % HEAD_WIDTH:
        raise ValueError(f"CLIP text width {width} is not a multiple of {HEAD_WIDTH} (64 channels per head)")
    return width // HEAD_WIDTH


def clip_text_config_from_state_dict(sd: dict[str, Tensor]) -> CLIPTextConfig:
    """Detect the layout and sizes of a CLIP text encoder from its (prefix-free) keys.

    Args:
        sd: state dict whose keys start at the model root (`text_model.…` or
            `token_embedding.weight`, …).

    Raises:
        ValueError: neither layout's token embedding is present.
    """
    if "text_model.embeddings.token_embedding.weight" in sd:
        vocab_size, width = sd["text_model.embeddings.token_embedding.weight"].shape
        projection = sd.get("text_projection.weight")
        return CLIPTextConfig(
            layout=HF_LAYOUT,
            vocab_size=vocab_size,
            max_positions=sd["text_model.embeddings.position_embedding.weight"].shape[0],
            width=width,
            layers=_count_layers(sd, r"text_model\.encoder\.layers\.(\d+)\."),
            heads=_heads_for(width),
            mlp_width=sd["text_model.encoder.layers.0.mlp.fc1.weight"].shape[0],
            # OpenAI's CLIP-L uses quick_gelu; the ViT-H/bigG towers saved in this layout use GELU.
            activation="gelu" if width in (1024, 1280) else "quick_gelu",
            projection_dim=None if projection is None else projection.shape[0],
        )
    if "token_embedding.weight" in sd:
        vocab_size, width = sd["token_embedding.weight"].shape
        projection = sd.get("text_projection")
        return CLIPTextConfig(
            layout=OPEN_CLIP_LAYOUT,
            vocab_size=vocab_size,
            max_positions=sd["positional_embedding"].shape[0],
            width=width,
            layers=_count_layers(sd, r"transformer\.resblocks\.(\d+)\."),
            heads=_heads_for(width),
            mlp_width=sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            activation="gelu",
            projection_dim=width if projection is None else projection.shape[1],
        )
    raise ValueError("no CLIP text encoder found: expected 'text_model.embeddings.token_embedding.weight' "
                     "(transformers layout) or 'token_embedding.weight' (OpenCLIP layout)")


def build_clip_text_model(config: CLIPTextConfig) -> CLIPTextModel | OpenCLIPTextModel:
    """An uninitialised model of `config`'s layout."""
    model_class = CLIPTextModel if config.layout == HF_LAYOUT else OpenCLIPTextModel
    return model_class(config)


def clip_text_model_from_state_dict(sd: dict[str, Tensor]) -> CLIPTextModel | OpenCLIPTextModel:
    """Build the model the tensors describe and load them by name (in their stored dtype).

    Raises:
        ValueError: a weight is missing or has an unexpected shape.
    """
    config = clip_text_config_from_state_dict(sd)
    with torch.device("meta"):
        model = build_clip_text_model(config)
    weights = {key: value for key, value in sd.items() if key not in _UNUSED_KEYS}
    if config.layout == OPEN_CLIP_LAYOUT and "text_projection" not in weights:
        weights["text_projection"] = torch.eye(config.width, dtype=weights["token_embedding.weight"].dtype)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ValueError(f"CLIP text encoder weights do not match the {config.layout} layout: "
                         f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    for key, tensor in expected.items():
        if tuple(weights[key].shape) != tuple(tensor.shape):
            raise ValueError(f"CLIP text encoder weight {key!r} has shape {tuple(weights[key].shape)}, "
                             f"expected {tuple(tensor.shape)}")
    model.load_state_dict(weights, assign=True)
    return model.eval().requires_grad_(False)
