"""Attaching a LoRA to MODEL and CLIP values (what LoraLoader does; ComfyUI's `load_lora_for_models`).

The values are cloned and the LoRA's adapters are appended to the clones' `patches` with
the given strengths; the shared networks are untouched until a value runs (see
`diffusion.lora.patching`). Several LoRAs stack by appending, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from diffusion.lora.formats import ParsedLora, parse_lora
from diffusion.lora.keymap import Target, text_encoder_key_map, unet_key_map
from diffusion.lora.patching import WeightPatch

log = logging.getLogger(__name__)


def _bias_target(target: Target) -> Target | None:
    if target.offset is not None or not target.parameter.endswith(".weight"):
        return None
    return Target(target.parameter[: -len(".weight")] + ".bias")


def add_patches(patches: dict[str, list[WeightPatch]], parsed: ParsedLora, key_map: Mapping[str, Target],
                strength: float) -> set[str]:
    """Append the adapters whose names `key_map` knows to `patches`; returns the base names used."""
    used = set()
    for base, adapter in parsed.adapters.items():
        target = key_map.get(base)
        if target is not None:
            patches.setdefault(target.parameter, []).append(WeightPatch(strength, adapter, target.offset))
            used.add(base)
    for base, adapter in parsed.bias_adapters.items():
        target = key_map.get(base)
        bias = _bias_target(target) if target is not None else None
        if bias is not None:
            patches.setdefault(bias.parameter, []).append(WeightPatch(strength, adapter))
            used.add(base)
    return used


def model_key_map(model: Any) -> dict[str, Target]:
    """LoRA names -> parameters of a MODEL value's UNet."""
    return unet_key_map(model.unet.state_dict().keys(), model.unet.config)


def clip_key_map(clip: Any) -> dict[str, Target]:
    """LoRA names -> parameters of a CLIP value's text model."""
    prefix = getattr(clip, "key_prefix", "") or "cond_stage_model.transformer."
    return text_encoder_key_map(clip.model.state_dict().keys(), prefix, clip.model.config.width)


def load_lora_for_models(model: Any, clip: Any, lora: Mapping[str, Tensor] | ParsedLora,
                         strength_model: float, strength_clip: float) -> tuple[Any, Any]:
    """Clones of `model` and `clip` carrying the LoRA (either may be None, and is then returned as is).

    Args:
        model: a MODEL value (`DiffusionModel`) or None.
        clip: a CLIP value (`TextEncoder`) or None.
        lora: the LoRA file's tensors, or the file already parsed.
        strength_model: multiplier of the UNet deltas (negative subtracts the LoRA).
        strength_clip: multiplier of the text-encoder deltas.

    Returns:
        `(model, clip)`; names matching neither network are logged as not loaded.
    """
    parsed = lora if isinstance(lora, ParsedLora) else parse_lora(lora)
    used: set[str] = set()
    new_model, new_clip = model, clip
    if model is not None:
        new_model = model.clone()
        used |= add_patches(new_model.patches, parsed, model_key_map(model), strength_model)
    if clip is not None:
        new_clip = clip.clone()
        used |= add_patches(new_clip.patches, parsed, clip_key_map(clip), strength_clip)
    unused = sorted((set(parsed.adapters) | set(parsed.bias_adapters)) - used)
    for name in unused + parsed.unsupported:
        log.warning("lora key not loaded: %s", name)
    return new_model, new_clip
