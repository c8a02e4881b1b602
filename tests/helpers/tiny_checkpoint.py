"""Tiny random single-file checkpoints in the SD1 and SD2 layouts, for tests.

The file holds what a real checkpoint holds, under the same prefixes and names:
`model.diffusion_model.` (ldm UNet), `first_stage_model.` (KL-f8 VAE) and
`cond_stage_model.` (SD1: the Hugging Face CLIP-L layout `transformer.text_model.*`;
SD2: the OpenCLIP layout `model.*`). The text encoder is built with transformers'
`CLIPTextModel` so that it does not depend on Kiln's own text encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from diffusion.models.unet import UNetConfig, UNetModel
from diffusion.models.vae import AutoencoderKL, VAEConfig

TEXT_WIDTH = 64  # one 64-channel head: the CLIP head rule at the smallest width
VOCAB_SIZE = 49408  # the CLIP BPE vocabulary, so real token ids stay in range

SD1_UNET = UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, transformer_depth=(1, 1),
                      context_dim=TEXT_WIDTH, num_heads=8)
SD2_UNET = UNetConfig(model_channels=64, channel_mult=(1, 2), num_res_blocks=1, transformer_depth=(1, 1),
                      context_dim=TEXT_WIDTH, num_heads=-1, num_head_channels=64, use_linear_in_transformer=True)
TINY_VAE = VAEConfig(ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1, z_channels=4)


@dataclass(frozen=True)
class TinyCheckpoint:
    path: Path
    layout: str
    unet: UNetConfig
    vae: VAEConfig
    state_dict: dict[str, Tensor]


def _randomised(module: torch.nn.Module, generator: torch.Generator) -> dict[str, Tensor]:
    """Random weights everywhere (default inits leave zero outputs that would hide bugs)."""
    state = {}
    for name, tensor in module.state_dict().items():
        if not tensor.is_floating_point():
            state[name] = tensor.clone()
        elif name.endswith("weight") and ("norm" in name or tensor.ndim == 1):
            state[name] = 1.0 + 0.1 * torch.randn(tensor.shape, generator=generator)
        else:
            state[name] = 0.05 * torch.randn(tensor.shape, generator=generator)
    return state


def hf_clip_text_model(hidden_act: str, generator_seed: int, layers: int = 2):
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(generator_seed)
    config = CLIPTextConfig(vocab_size=VOCAB_SIZE, hidden_size=TEXT_WIDTH, intermediate_size=4 * TEXT_WIDTH,
                            num_hidden_layers=layers, num_attention_heads=TEXT_WIDTH // 64,
                            max_position_embeddings=77, hidden_act=hidden_act)
    return CLIPTextModel(config).eval()


def openclip_keys(hf_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """HF CLIP text-model names -> OpenCLIP's (`token_embedding`, `transformer.resblocks.N`, ...)."""
    out: dict[str, Tensor] = {
        "token_embedding.weight": hf_state["text_model.embeddings.token_embedding.weight"],
        "positional_embedding": hf_state["text_model.embeddings.position_embedding.weight"],
        "ln_final.weight": hf_state["text_model.final_layer_norm.weight"],
        "ln_final.bias": hf_state["text_model.final_layer_norm.bias"],
        "text_projection": torch.eye(TEXT_WIDTH),
        "logit_scale": torch.tensor(4.6052),
    }
    layer = 0
    while f"text_model.encoder.layers.{layer}.layer_norm1.weight" in hf_state:
        src = f"text_model.encoder.layers.{layer}."
        dst = f"transformer.resblocks.{layer}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat(
                [hf_state[src + f"self_attn.{p}_proj.{kind}"] for p in ("q", "k", "v")])
            out[dst + f"attn.out_proj.{kind}"] = hf_state[src + f"self_attn.out_proj.{kind}"]
            out[dst + f"ln_1.{kind}"] = hf_state[src + f"layer_norm1.{kind}"]
            out[dst + f"ln_2.{kind}"] = hf_state[src + f"layer_norm2.{kind}"]
            out[dst + f"mlp.c_fc.{kind}"] = hf_state[src + f"mlp.fc1.{kind}"]
            out[dst + f"mlp.c_proj.{kind}"] = hf_state[src + f"mlp.fc2.{kind}"]
        layer += 1
    return out


def tiny_state_dict(layout: str = "sd1", seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """All tensors of a tiny checkpoint, keyed as in an original SD1/SD2 single file."""
    if layout not in ("sd1", "sd2"):
        raise ValueError(f"layout must be 'sd1' or 'sd2', not {layout!r}")
    generator = torch.Generator().manual_seed(seed)
    unet_config = SD1_UNET if layout == "sd1" else SD2_UNET
    state: dict[str, Tensor] = {}
    for name, tensor in _randomised(UNetModel(unet_config), generator).items():
        state["model.diffusion_model." + name] = tensor
    for name, tensor in _randomised(AutoencoderKL(TINY_VAE), generator).items():
        state["first_stage_model." + name] = tensor
    text = hf_clip_text_model("quick_gelu" if layout == "sd1" else "gelu", seed)
    # transformers 5 drops the `text_model.` level in memory; files (and SD checkpoints) keep it.
    text_state = {(k if k.startswith("text_model.") else "text_model." + k): v for k, v in text.state_dict().items()}
    if layout == "sd1":
        text_state.setdefault("text_model.embeddings.position_ids", torch.arange(77)[None])
        for name, tensor in text_state.items():
            state["cond_stage_model.transformer." + name] = tensor
    else:
        for name, tensor in openclip_keys(text_state).items():
            state["cond_stage_model.model." + name] = tensor
    return {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in state.items()}


def write_tiny_checkpoint(path: str | Path, layout: str = "sd1", seed: int = 0,
                          dtype: torch.dtype = torch.float32) -> TinyCheckpoint:
    """Write a tiny random checkpoint (`.safetensors`, or a `torch.save` pickle for other suffixes)."""
    path = Path(path)
    state = tiny_state_dict(layout, seed, dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".safetensors", ".sft"):
        save_file(state, str(path))
    else:
        torch.save({"state_dict": state}, path)
    return TinyCheckpoint(path, layout, SD1_UNET if layout == "sd1" else SD2_UNET, TINY_VAE, state)
