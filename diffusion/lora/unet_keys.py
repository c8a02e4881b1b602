"""Names of the ldm UNet's parameters in the diffusers layout (`UNet2DConditionModel`), and back.

LoRA files trained with diffusers or kohya's scripts name UNet layers by their diffusers path
(`down_blocks.0.attentions.0.proj_in`), diffusers ControlNets store their encoder the same
way, while Kiln's UNet keeps the original ldm names (`input_blocks.1.1.proj_in`). The two
layouts differ only in block numbering and in the ResBlock's inner names:

| ldm | diffusers |
| --- | --- |
| `input_blocks.0.0` | `conv_in` |
| `time_embed.{0,2}` | `time_embedding.linear_{1,2}` |
| `label_emb.0.{0,2}` | `add_embedding.linear_{1,2}` |
| `input_blocks.{1 + l·(n+1) + j}.{0,1}` | `down_blocks.l.{resnets,attentions}.j` |
| `input_blocks.{(l+1)·(n+1)}.0.op` | `down_blocks.l.downsamplers.0.conv` |
| `middle_block.{0,1,2}` | `mid_block.{resnets.0, attentions.0, resnets.1}` |
| `output_blocks.{i·(n+1) + j}.{0,1}` | `up_blocks.i.{resnets,attentions}.j` |
| `output_blocks.{i·(n+1) + n}.{1 or 2}.conv` | `up_blocks.i.upsamplers.0.conv` |
| `out.{0,2}` | `conv_norm_out`, `conv_out` |
| ResBlock `in_layers.{0,2}`, `emb_layers.1`, `out_layers.{0,3}`, `skip_connection` | `norm1`, `conv1`, `time_emb_proj`, `norm2`, `conv2`, `conv_shortcut` |

where n is `num_res_blocks` and l a resolution level. Transformer blocks keep their names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

RESNET_NAMES = {
    "in_layers.0.": "norm1.",
    "in_layers.2.": "conv1.",
    "emb_layers.1.": "time_emb_proj.",
    "out_layers.0.": "norm2.",
    "out_layers.3.": "conv2.",
    "skip_connection.": "conv_shortcut.",
}


def block_prefixes(config: Any, encoder_only: bool = False) -> list[tuple[str, str, bool]]:
    """`(ldm prefix, diffusers prefix, is_resblock)` for every block of a UNet of `config`.

    Args:
        config: a `diffusion.models.unet.UNetConfig` (or anything with its fields).
        encoder_only: only the parts a ControlNet has (no output blocks, no `out`).
    """
    per_level = config.num_res_blocks + 1
    levels = len(config.channel_mult)
    prefixes = [
        ("time_embed.0.", "time_embedding.linear_1.", False),
        ("time_embed.2.", "time_embedding.linear_2.", False),
        ("label_emb.0.0.", "add_embedding.linear_1.", False),
        ("label_emb.0.2.", "add_embedding.linear_2.", False),
        ("input_blocks.0.0.", "conv_in.", False),
    ]
    for level in range(levels):
        for j in range(config.num_res_blocks):
            index = 1 + level * per_level + j
            prefixes.append((f"input_blocks.{index}.0.", f"down_blocks.{level}.resnets.{j}.", True))
            if config.transformer_depth[level] > 0:
                prefixes.append((f"input_blocks.{index}.1.", f"down_blocks.{level}.attentions.{j}.", False))
        if level < levels - 1:
            prefixes.append((f"input_blocks.{(level + 1) * per_level}.0.op.",
                             f"down_blocks.{level}.downsamplers.0.conv.", False))
    prefixes.append(("middle_block.0.", "mid_block.resnets.0.", True))
    if config.transformer_depth_middle > 0:
        prefixes.append(("middle_block.1.", "mid_block.attentions.0.", False))
        prefixes.append(("middle_block.2.", "mid_block.resnets.1.", True))
    else:
        prefixes.append(("middle_block.1.", "mid_block.resnets.1.", True))
    if encoder_only:
        return prefixes
    for up in range(levels):
        level = levels - 1 - up
        attention = config.transformer_depth[level] > 0
        for j in range(per_level):
            index = up * per_level + j
            prefixes.append((f"output_blocks.{index}.0.", f"up_blocks.{up}.resnets.{j}.", True))
            if attention:
                prefixes.append((f"output_blocks.{index}.1.", f"up_blocks.{up}.attentions.{j}.", False))
        if level > 0:
            slot = 2 if attention else 1
            prefixes.append((f"output_blocks.{up * per_level + config.num_res_blocks}.{slot}.conv.",
                             f"up_blocks.{up}.upsamplers.0.conv.", False))
    prefixes += [("out.0.", "conv_norm_out.", False), ("out.2.", "conv_out.", False)]
    return prefixes


def _rename_inside(rest: str, is_resblock: bool, table: dict[str, str]) -> str:
    if is_resblock:
        for old, new in table.items():
            if rest.startswith(old):
                return new + rest[len(old):]
    return rest


def ldm_to_diffusers(config: Any, ldm_keys: Iterable[str], encoder_only: bool = False) -> dict[str, str]:
    """Each ldm UNet key (e.g. `input_blocks.1.0.in_layers.2.weight`) -> its diffusers name.

    Keys outside the known blocks are left out of the result.
    """
    prefixes = block_prefixes(config, encoder_only)
    mapping = {}
    for key in ldm_keys:
        for ldm_prefix, diffusers_prefix, is_resblock in prefixes:
            if key.startswith(ldm_prefix):
                mapping[key] = diffusers_prefix + _rename_inside(key[len(ldm_prefix):], is_resblock, RESNET_NAMES)
                break
    return mapping


def diffusers_to_ldm(config: Any, diffusers_keys: Iterable[str], encoder_only: bool = False) -> dict[str, str]:
    """Each diffusers UNet key (e.g. `down_blocks.0.resnets.0.conv1.weight`) -> its ldm name."""
    inverse = {new: old for old, new in RESNET_NAMES.items()}
    # Longest prefix first, so `mid_block.resnets.1.` never matches as `mid_block.resnets.1` + `0.`.
    prefixes = sorted(block_prefixes(config, encoder_only), key=lambda p: -len(p[1]))
    mapping = {}
    for key in diffusers_keys:
        for ldm_prefix, diffusers_prefix, is_resblock in prefixes:
            if key.startswith(diffusers_prefix):
                mapping[key] = ldm_prefix + _rename_inside(key[len(diffusers_prefix):], is_resblock, inverse)
                break
    return mapping
