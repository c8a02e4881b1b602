"""Which model parameter each LoRA layer name patches (the role of ComfyUI's `model_lora_keys_*`).

A layer has several names across LoRA formats. For a UNet layer whose ldm path is
`input_blocks.1.1.proj_in` (diffusers: `down_blocks.0.attentions.0.proj_in`):

* kohya, ldm paths: `lora_unet_input_blocks_1_1_proj_in`
* kohya, diffusers paths: `lora_unet_down_blocks_0_attentions_0_proj_in`
* diffusers / PEFT: `unet.down_blocks.0.attentions.0.proj_in` (or without `unet.`, or PEFT's
  own `base_model.model.` prefix)
* checkpoint names: `diffusion_model.input_blocks.1.1.proj_in`, `model.diffusion_model.…`

For the text encoder (Hugging Face path `text_model.encoder.layers.0.self_attn.q_proj`):
`lora_te_text_model_encoder_layers_0_self_attn_q_proj`, `text_encoder.text_model.…` and the
checkpoint name. SD2's OpenCLIP encoder packs q, k and v into one `in_proj_weight`, so those
names patch a slice of it, given as an offset `(dim, start, length)`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from diffusion.lora.unet_keys import ldm_to_diffusers

_OPENCLIP_LAYER = re.compile(r"transformer\.resblocks\.(\d+)\.(.+)")
_OPENCLIP_TO_HF = {
    "attn.out_proj": "self_attn.out_proj",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}


class Target(NamedTuple):
    """A parameter of a model and, for packed weights, the slice `(dim, start, length)` patched."""

    parameter: str
    offset: tuple[int, int, int] | None = None


def _kohya(prefix: str, path: str) -> str:
    return prefix + path.replace(".", "_")


def _module_paths(parameter_names: Iterable[str]) -> list[str]:
    return [name[: -len(".weight")] for name in parameter_names if name.endswith(".weight")]


def unet_key_map(unet_parameters: Iterable[str], config: Any) -> dict[str, Target]:
    """LoRA base names -> UNet `.weight` parameters (ldm names, as in Kiln's `UNetModel`).

    Args:
        unet_parameters: the UNet's state-dict names (`input_blocks.1.1.proj_in.weight`, ...).
        config: its `UNetConfig`, to number the diffusers blocks.
    """
    paths = _module_paths(unet_parameters)
    mapping: dict[str, Target] = {}
    for path in paths:
        target = Target(path + ".weight")
        for name in (_kohya("lora_unet_", path), "diffusion_model." + path, "model.diffusion_model." + path):
            mapping[name] = target
    for ldm_name, diffusers_name in ldm_to_diffusers(config, [path + ".weight" for path in paths]).items():
        target = Target(ldm_name)
        diffusers_path = diffusers_name[: -len(".weight")]
        for name in (_kohya("lora_unet_", diffusers_path), "unet." + diffusers_path, diffusers_path,
                     "base_model.model." + diffusers_path):
            mapping.setdefault(name, target)
    return mapping


def text_encoder_key_map(parameter_names: Iterable[str], checkpoint_prefix: str = "cond_stage_model.transformer.",
                         width: int | None = None) -> dict[str, Target]:
    """LoRA base names -> text-encoder parameters (Hugging Face or OpenCLIP layout).

    Args:
        parameter_names: the text model's state-dict names.
        checkpoint_prefix: where the model sat in its checkpoint (its own names then match too).
        width: hidden width (needed for OpenCLIP's packed q/k/v).
    """
    names = list(parameter_names)
    mapping: dict[str, Target] = {}
    for path in _module_paths(names):
        target = Target(path + ".weight")
        hf_path = path
        if match := _OPENCLIP_LAYER.fullmatch(path):
            layer, inner = match.groups()
            if inner not in _OPENCLIP_TO_HF:
                mapping[checkpoint_prefix + path] = target
                continue
            hf_path = f"text_model.encoder.layers.{layer}.{_OPENCLIP_TO_HF[inner]}"
        for name in (_kohya("lora_te_", hf_path), _kohya("lora_te1_", hf_path), "text_encoder." + hf_path,
                     checkpoint_prefix + path):
            mapping[name] = target
    for name in names:
        if (match := _OPENCLIP_LAYER.fullmatch(name)) and match[2] == "attn.in_proj_weight":
            if width is None:
                raise ValueError("the OpenCLIP layout needs the model width to map q/k/v LoRA layers")
            for index, projection in enumerate(("q_proj", "k_proj", "v_proj")):
                hf_path = f"text_model.encoder.layers.{match[1]}.self_attn.{projection}"
                target = Target(name, (0, index * width, width))
                for alias in (_kohya("lora_te_", hf_path), _kohya("lora_te1_", hf_path), "text_encoder." + hf_path):
                    mapping[alias] = target
    return mapping
