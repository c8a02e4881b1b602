"""Reading LoRA files: group tensors by layer, build adapters, find the parameter each one patches.

Formats recognised (by the tensor-name suffixes after a layer's base name):

| format | suffixes |
| --- | --- |
| kohya / LyCORIS LoCon | `.lora_up.weight`, `.lora_down.weight`, `.lora_mid.weight`, `.alpha` |
| diffusers (attention processors, older) | `.lora.up.weight`, `.lora.down.weight`, `_lora.up.weight`, ... |
| diffusers / PEFT | `.lora_A.weight` (down), `.lora_B.weight` (up), `.alpha` |
| LyCORIS LoHa | `.hada_w1_a`, `.hada_w1_b`, `.hada_w2_a`, `.hada_w2_b`, `.hada_t1`, `.hada_t2`, `.alpha` |
| LyCORIS LoKr | `.lokr_w1`, `.lokr_w1_a`, `.lokr_w1_b`, `.lokr_w2`, `.lokr_w2_a`, `.lokr_w2_b`, `.lokr_t2`, `.alpha` |
| full difference | `.diff`, `.diff_b` |

Base names are matched against the names a layer may have in a LoRA file (see
`diffusion.lora.keymap`): kohya's `lora_unet_…`/`lora_te_…` (dots as underscores, ldm or
diffusers paths), diffusers' `unet.…`/`text_encoder.…`, and the original checkpoint names.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import Tensor

from diffusion.lora.adapters import Adapter, FullDiff, LoHa, LoKr, LoRA

log = logging.getLogger(__name__)

# Longest first: `.lora_up.weight` must not be read as `.weight` of a layer named `….lora_up`.
_SUFFIXES = sorted([
    ".lora_up.weight", ".lora_down.weight", ".lora_mid.weight",
    ".lora.up.weight", ".lora.down.weight", "_lora.up.weight", "_lora.down.weight",
    ".lora_A.weight", ".lora_B.weight", ".lora_A.default.weight", ".lora_B.default.weight",
    ".hada_w1_a", ".hada_w1_b", ".hada_w2_a", ".hada_w2_b", ".hada_t1", ".hada_t2",
    ".lokr_w1", ".lokr_w1_a", ".lokr_w1_b", ".lokr_w2", ".lokr_w2_a", ".lokr_w2_b", ".lokr_t2",
    ".diff", ".diff_b", ".alpha", ".dora_scale",
], key=len, reverse=True)

_ROLE = {
    ".lora_up.weight": "up", ".lora.up.weight": "up", "_lora.up.weight": "up", ".lora_B.weight": "up",
    ".lora_B.default.weight": "up",
    ".lora_down.weight": "down", ".lora.down.weight": "down", "_lora.down.weight": "down",
    ".lora_A.weight": "down", ".lora_A.default.weight": "down",
    ".lora_mid.weight": "mid",
}


@dataclass
class ParsedLora:
    """A LoRA file's adapters by base name, each patching a `.weight` (and `diff_b` a `.bias`)."""

    adapters: dict[str, Adapter] = field(default_factory=dict)
    bias_adapters: dict[str, Adapter] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)


def split_key(key: str) -> tuple[str, str] | None:
    """`(base name, suffix)` of a LoRA tensor name, or None when no known suffix ends it."""
    for suffix in _SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], suffix
    return None


def _alpha(tensors: Mapping[str, Tensor]) -> float | None:
    alpha = tensors.get(".alpha")
    return None if alpha is None else float(alpha.float().flatten()[0])


def build_adapter(tensors: Mapping[str, Tensor]) -> Adapter | None:
    """The adapter for one layer from its tensors keyed by suffix (None if they form none)."""
    roles = {_ROLE[s]: t for s, t in tensors.items() if s in _ROLE}
    if "up" in roles and "down" in roles:
        return LoRA(roles["up"], roles["down"], _alpha(tensors), roles.get("mid"))
    if all(f".hada_w{i}_{ab}" in tensors for i in (1, 2) for ab in "ab"):
        return LoHa(tensors[".hada_w1_a"], tensors[".hada_w1_b"], tensors[".hada_w2_a"], tensors[".hada_w2_b"],
                    _alpha(tensors), tensors.get(".hada_t1"), tensors.get(".hada_t2"))
    if any(s.startswith(".lokr_") for s in tensors):
        return LoKr(tensors.get(".lokr_w1"), tensors.get(".lokr_w1_a"), tensors.get(".lokr_w1_b"),
                    tensors.get(".lokr_w2"), tensors.get(".lokr_w2_a"), tensors.get(".lokr_w2_b"),
                    tensors.get(".lokr_t2"), _alpha(tensors))
    if ".diff" in tensors:
        return FullDiff(tensors[".diff"])
    return None


def _normalise_base(base: str, suffix: str) -> str:
    """diffusers' attention-processor names -> layer names (`attn1.processor.to_out_lora` -> `attn1.to_out.0`)."""
    base = base.replace(".processor.", ".")
    if suffix.startswith("_lora") and base.endswith(".to_out"):
        return base + ".0"
    return base


def parse_lora(state_dict: Mapping[str, Tensor]) -> ParsedLora:
    """Group a LoRA file's tensors by layer and build one adapter per layer.

    Args:
        state_dict: the file's tensors.

    Returns:
        Adapters by base name (normalised; not yet matched to a model).
    """
    groups: dict[str, dict[str, Tensor]] = {}
    parsed = ParsedLora()
    for key in state_dict:
        split = split_key(key)
        if split is None:
            parsed.unsupported.append(key)
            continue
        base, suffix = split
        groups.setdefault(_normalise_base(base, suffix), {})[suffix] = state_dict[key]
    for base, tensors in groups.items():
        if ".dora_scale" in tensors:
            log.warning("LoRA layer %s uses DoRA, whose magnitude scaling Kiln does not apply", base)
        if ".diff_b" in tensors:
            parsed.bias_adapters[base] = FullDiff(tensors[".diff_b"])
        adapter = build_adapter(tensors)
        if adapter is not None:
            parsed.adapters[base] = adapter
        elif ".diff_b" not in tensors:
            parsed.unsupported.extend(base + suffix for suffix in tensors)
    return parsed
