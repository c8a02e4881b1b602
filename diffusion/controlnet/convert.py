"""diffusers `ControlNetModel` weights -> the original `control_model.` names (done once, on load).

| diffusers | original |
| --- | --- |
| `conv_in`, `time_embedding`, `add_embedding`, `down_blocks`, `mid_block` | the UNet encoder's names (`diffusion.lora.unet_keys`) |
| `controlnet_cond_embedding.conv_in` | `input_hint_block.0` |
| `controlnet_cond_embedding.blocks.k` | `input_hint_block.{2k + 2}` |
| `controlnet_cond_embedding.conv_out` | `input_hint_block.{2·len(blocks) + 2}` |
| `controlnet_down_blocks.N` | `zero_convs.N.0` |
| `controlnet_mid_block` | `middle_block_out.0` |
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from diffusion.lora.unet_keys import diffusers_to_ldm

DIFFUSERS_MARKER = "controlnet_cond_embedding.conv_in.weight"
_HINT_BLOCK = re.compile(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.+)")
_ZERO_CONV = re.compile(r"controlnet_down_blocks\.(\d+)\.(.+)")


def is_diffusers_controlnet(state_dict: Mapping[str, Tensor]) -> bool:
    return DIFFUSERS_MARKER in state_dict


def convert_diffusers_controlnet(state_dict: Mapping[str, Tensor], config: Any) -> dict[str, Tensor]:
    """The tensors of a diffusers ControlNet under their original names (no `control_model.` prefix).

    Args:
        state_dict: the diffusers file's tensors.
        config: the `UNetConfig` of its encoder (see `diffusion.controlnet.load.detect_diffusers_config`).
    """
    hint_blocks = {int(m[1]) for key in state_dict if (m := _HINT_BLOCK.fullmatch(key))}
    last_hint = 2 * len(hint_blocks) + 2
    unet_names = diffusers_to_ldm(config, state_dict.keys(), encoder_only=True)
    converted: dict[str, Tensor] = {}
    for key, tensor in state_dict.items():
        if key.startswith("controlnet_cond_embedding.conv_in."):
            name = "input_hint_block.0." + key.rsplit(".", 1)[1]
        elif key.startswith("controlnet_cond_embedding.conv_out."):
            name = f"input_hint_block.{last_hint}." + key.rsplit(".", 1)[1]
        elif m := _HINT_BLOCK.fullmatch(key):
            name = f"input_hint_block.{2 * int(m[1]) + 2}.{m[2]}"
        elif m := _ZERO_CONV.fullmatch(key):
            name = f"zero_convs.{m[1]}.0.{m[2]}"
        elif key.startswith("controlnet_mid_block."):
            name = "middle_block_out.0." + key[len("controlnet_mid_block."):]
        elif key in unet_names:
            name = unet_names[key]
        else:
            continue
        converted[name] = tensor
    return converted
