"""What a state dict holds, from its tensor names and shapes alone (comfy-compat §11.4).

Configurations are read off the weights the way ComfyUI's `model_detection` does, and the
model family (SD1.x, SD2.x, ...) follows from the layout, so smaller models of the same
layout (such as Kiln's demo model) load through the same path as real checkpoints.
Head counts are not in the weights; the family fixes them (SD1: 8 heads, SD2/SDXL: 64
channels per head).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from diffusion.latent_formats import SD15, LatentFormat
from diffusion.loading.errors import UnsupportedModel
from diffusion.models.unet import UNetConfig
from diffusion.models.vae import VAEConfig

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_ENCODER_PREFIX = "cond_stage_model."

# Marker keys of families Kiln recognises but does not implement yet, in ComfyUI's test order.
_UNSUPPORTED_MARKERS = (
    ("joint_blocks.0.context_block.attn.qkv.weight", "SD3 (MMDiT)"),
    ("clf.1.weight", "Stable Cascade"),
    ("transformer.rotary_pos_emb.inv_freq", "Stable Audio"),
    ("double_layers.0.attn.w1q.weight", "AuraFlow"),
    ("mlp_t5.0.weight", "HunyuanDiT"),
    ("txt_in.individual_token_refiner.blocks.0.norm1.weight", "HunyuanVideo"),
    ("double_blocks.0.img_attn.norm.key_norm.scale", "Flux"),
    ("t5_yproj.weight", "Mochi"),
    ("adaln_single.emb.timestep_embedder.linear_1.bias", "PixArt/LTXV"),
    ("cap_embedder.1.weight", "Lumina2"),
    ("head.modulation", "Wan"),
    ("txt_norm.weight", "Qwen-Image"),
)

# ComfyUI's SD2 v-prediction test: v models trained a wider spread into this norm's bias.
_V_PREDICTION_PROBE = "output_blocks.11.1.transformer_blocks.0.norm1.bias"
_V_PREDICTION_STD = 0.09


@dataclass(frozen=True)
class ModelFamily:
    """A model description: architecture config, parameterisation and latent space."""

    name: str
    unet: UNetConfig
    prediction_type: str
    latent_format: LatentFormat


def unet_prefix(state_dict: Mapping[str, Tensor]) -> str:
    """`model.diffusion_model.` for full checkpoints; "" for a diffusion-model-only file."""
    count = sum(1 for key in state_dict if key.startswith(UNET_PREFIX))
    return UNET_PREFIX if count > 5 else ""


def _indices(keys: list[str], pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for key in keys if (m := regex.match(key))})


def _transformer_depth(keys: list[str], block: str) -> int:
    return len(_indices(keys, re.escape(block) + r"\.1\.transformer_blocks\.(\d+)\."))


def detect_unet_config(state_dict: Mapping[str, Tensor], prefix: str, source: Path | str) -> UNetConfig:
    """Read an ldm UNet's configuration from its weights.

    Args:
        state_dict: a checkpoint's tensors.
        prefix: where the UNet's keys start (`model.diffusion_model.` or "").
        source: the file, named in errors.

    Raises:
        UnsupportedModel: not an ldm UNet, or one with a shape Kiln's UNet cannot build.
    """
    keys = [key[len(prefix):] for key in state_dict if key.startswith(prefix)]
    first = state_dict[prefix + "input_blocks.0.0.weight"]
    model_channels, in_channels = int(first.shape[0]), int(first.shape[1])
    out_channels = int(state_dict[prefix + "out.2.weight"].shape[0])
    adm_key = prefix + "label_emb.0.0.weight"
    adm_in_channels = int(state_dict[adm_key].shape[1]) if adm_key in state_dict else None

    channel_mult: list[int] = []
    depths: list[int] = []
    res_blocks: list[int] = []
    count, mult, depth = 0, 1, 0
    for index in _indices(keys, r"input_blocks\.(\d+)\.")[1:]:
        block = f"input_blocks.{index}"
        if f"{block}.0.op.weight" in keys:
            channel_mult.append(mult), depths.append(depth), res_blocks.append(count)
            count, depth = 0, 0
        else:
            count += 1
            mult = int(state_dict[f"{prefix}{block}.0.out_layers.3.weight"].shape[0]) // model_channels
            depth = max(depth, _transformer_depth(keys, block))
    channel_mult.append(mult), depths.append(depth), res_blocks.append(count)
    if len(set(res_blocks)) != 1:
        raise UnsupportedModel(f"{source}: UNet with a varying number of ResBlocks per level ({res_blocks})")

    attn2 = next((key for key in keys if key.endswith("transformer_blocks.0.attn2.to_k.weight")), None)
    context_dim = int(state_dict[prefix + attn2].shape[1]) if attn2 else 768
    proj_in = next((key for key in keys if key.endswith(".proj_in.weight")), None)
    use_linear = proj_in is not None and state_dict[prefix + proj_in].ndim == 2
    sd2_heads = use_linear or context_dim == 1024 or adm_in_channels is not None
    return UNetConfig(
        in_channels=in_channels,
        out_channels=out_channels,
        model_channels=model_channels,
        channel_mult=tuple(channel_mult),
        num_res_blocks=res_blocks[0],
        transformer_depth=tuple(depths),
        transformer_depth_middle=_transformer_depth(keys, "middle_block"),
        context_dim=context_dim,
        num_heads=-1 if sd2_heads else 8,
        num_head_channels=64 if sd2_heads else -1,
        use_linear_in_transformer=use_linear,
        adm_in_channels=adm_in_channels,
    )


def detect_family(state_dict: Mapping[str, Tensor], prefix: str, source: Path | str) -> ModelFamily:
    """Identify the diffusion model in a state dict (SD1.x or SD2.x, eps or v).

    Raises:
        UnsupportedModel: another family (named when recognised) or no diffusion model at all.
    """
    for marker, family in _UNSUPPORTED_MARKERS:
        if prefix + marker in state_dict:
            raise UnsupportedModel(f"{source} holds a {family} model, which Kiln does not support yet")
    if prefix + "input_blocks.0.0.weight" not in state_dict:
        raise UnsupportedModel(f"{source}: no diffusion model found (no {prefix}input_blocks.0.0.weight)")
    config = detect_unet_config(state_dict, prefix, source)
    if config.adm_in_channels is not None:
        raise UnsupportedModel(f"{source} holds a UNet with vector conditioning (SDXL or unCLIP family), "
                               "which Kiln does not support yet")
    if config.num_head_channels > 0:
        return ModelFamily("SD20", config, _sd2_prediction(state_dict, prefix, config), SD15)
    return ModelFamily("SD15", config, "eps", SD15)


def _sd2_prediction(state_dict: Mapping[str, Tensor], prefix: str, config: UNetConfig) -> str:
    if "v_pred" in state_dict:
        return "v"
    probe = state_dict.get(prefix + _V_PREDICTION_PROBE)
    if config.in_channels == 4 and probe is not None:
        if torch.std(probe.float(), unbiased=False) > _V_PREDICTION_STD:
            return "v"
    return "eps"


def vae_prefix(state_dict: Mapping[str, Tensor]) -> str | None:
    """Where the VAE's keys start: `first_stage_model.`, `vae.` or "" (a VAE file); None without one."""
    for prefix in (VAE_PREFIX, "vae.", ""):
        if prefix + "encoder.conv_in.weight" in state_dict and prefix + "decoder.conv_in.weight" in state_dict:
            return prefix
    return None


def detect_vae_config(state_dict: Mapping[str, Tensor], prefix: str, source: Path | str) -> VAEConfig:
    """Read an ldm AutoencoderKL's configuration from its weights.

    Raises:
        UnsupportedModel: a diffusers-layout VAE or another autoencoder.
    """
    if prefix + "encoder.down_blocks.0.resnets.0.conv1.weight" in state_dict:
        raise UnsupportedModel(f"{source} is a VAE in the diffusers layout; Kiln reads the original layout")
    if prefix + "encoder.down.0.block.0.conv1.weight" not in state_dict:
        raise UnsupportedModel(f"{source}: no KL autoencoder found (no {prefix}encoder.down.0.block.0.conv1.weight)")
    keys = [key[len(prefix):] for key in state_dict if key.startswith(prefix)]
    conv_in = state_dict[prefix + "encoder.conv_in.weight"]
    ch = int(conv_in.shape[0])
    levels = _indices(keys, r"encoder\.down\.(\d+)\.")
    ch_mult = tuple(int(state_dict[f"{prefix}encoder.down.{i}.block.0.conv2.weight"].shape[0]) // ch for i in levels)
    return VAEConfig(
        ch=ch,
        ch_mult=ch_mult,
        num_res_blocks=len(_indices(keys, r"encoder\.down\.0\.block\.(\d+)\.")),
        z_channels=int(state_dict[prefix + "decoder.conv_in.weight"].shape[1]),
        in_channels=int(conv_in.shape[1]),
    )
