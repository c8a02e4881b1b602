"""Reading ControlNet files (ControlNetLoader, DiffControlNetLoader; ComfyUI's `load_controlnet`).

Recognised, from the tensor names:

* original layout: `control_model.input_hint_block.*`, `control_model.zero_convs.*`, ... (or
  the same names without the prefix);
* diffusers layout: `controlnet_cond_embedding.*`, `controlnet_down_blocks.*`, converted to the
  original names on load (`diffusion.controlnet.convert`);
* "diff" ControlNets, marked by a `difference` tensor: each `control_model.X` is a difference
  to the base UNet's `X`, so the base model's weights are added in;
* T2I-Adapters (`body.N.…`, `adapter.body.N.…`), loaded by `diffusion.controlnet.t2i_adapter`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from diffusion.controlnet.control import ControlNet
from diffusion.controlnet.convert import convert_diffusers_controlnet, is_diffusers_controlnet
from diffusion.controlnet.model import ControlNetModel, hint_block_shapes
from diffusion.models.unet import UNetConfig

log = logging.getLogger(__name__)

CONTROL_PREFIX = "control_model."
_ORIGINAL_MARKER = "input_hint_block.0.weight"


class ControlNetFileError(ValueError):
    """The file is not a ControlNet Kiln can read (the message names the file)."""


def _count(keys: list[str], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for key in keys if (m := regex.match(key))})


def _uses_sd2_heads(context_dim: int, use_linear: bool, adm_in_channels: int | None) -> bool:
    # Head counts are not stored: SD1 fixes 8 heads, SD2/SDXL 64 channels per head (comfy-compat §11.4).
    return use_linear or context_dim == 1024 or adm_in_channels is not None


def detect_diffusers_config(state_dict: Mapping[str, Tensor]) -> UNetConfig:
    """The UNet encoder shape of a diffusers ControlNet, read from its tensor names and shapes."""
    keys = list(state_dict)
    conv_in = state_dict["conv_in.weight"]
    model_channels, in_channels = int(conv_in.shape[0]), int(conv_in.shape[1])
    levels = _count(keys, r"down_blocks\.(\d+)\.")
    channel_mult = tuple(int(state_dict[f"down_blocks.{level}.resnets.0.conv2.weight"].shape[0]) // model_channels
                         for level in range(levels))
    depths = tuple(_count(keys, rf"down_blocks\.{level}\.attentions\.0\.transformer_blocks\.(\d+)\.")
                   for level in range(levels))
    attn2 = next((key for key in keys if key.endswith("attn2.to_k.weight")), None)
    context_dim = int(state_dict[attn2].shape[1]) if attn2 else 768
    proj_in = next((key for key in keys if key.endswith("proj_in.weight")), None)
    use_linear = proj_in is not None and state_dict[proj_in].ndim == 2
    adm = int(state_dict["add_embedding.linear_1.weight"].shape[1]) if "add_embedding.linear_1.weight" in state_dict else None
    sd2_heads = _uses_sd2_heads(context_dim, use_linear, adm)
    return UNetConfig(
        in_channels=in_channels, out_channels=in_channels, model_channels=model_channels, channel_mult=channel_mult,
        num_res_blocks=_count(keys, r"down_blocks\.0\.resnets\.(\d+)\."), transformer_depth=depths,
        transformer_depth_middle=_count(keys, r"mid_block\.attentions\.0\.transformer_blocks\.(\d+)\."),
        context_dim=context_dim, num_heads=-1 if sd2_heads else 8, num_head_channels=64 if sd2_heads else -1,
        use_linear_in_transformer=use_linear, adm_in_channels=adm,
    )


def detect_original_config(state_dict: Mapping[str, Tensor], prefix: str, source: Path | str) -> UNetConfig:
    """The UNet encoder shape of an original-layout ControlNet.

    The encoder is the UNet's, so the UNet's own detection applies; a ControlNet has no
    output side, whose only input to the detection (`out.2.weight`, the output channels)
    is taken to equal the input channels.
    """
    from diffusion.loading.detect import detect_unet_config

    in_channels = state_dict[prefix + "input_blocks.0.0.weight"].shape[1]
    view = _WithOutput(state_dict, prefix + "out.2.weight", torch.empty(in_channels, 1, 1, 1, device="meta"))
    return detect_unet_config(view, prefix, source)


class _WithOutput(Mapping):
    """A state dict plus one stand-in tensor (read only)."""

    def __init__(self, base: Mapping[str, Tensor], key: str, tensor: Tensor):
        self.base, self.key, self.tensor = base, key, tensor

    def __getitem__(self, key: str) -> Tensor:
        return self.tensor if key == self.key else self.base[key]

    def __iter__(self):
        yield from self.base
        yield self.key

    def __len__(self) -> int:
        return len(self.base) + 1

    def __contains__(self, key: object) -> bool:
        return key == self.key or key in self.base


def controlnet_model_from_state_dict(state_dict: Mapping[str, Tensor], source: Path | str = "<state dict>",
                                     base_model: Any = None) -> ControlNetModel:
    """Build the control network a state dict holds (original, diffusers or diff layout)."""
    from diffusion.loading.checkpoint import load_weights

    if is_diffusers_controlnet(state_dict):
        config = detect_diffusers_config(state_dict)
        state_dict = convert_diffusers_controlnet(state_dict, config)
        prefix = ""
    else:
        prefix = CONTROL_PREFIX if CONTROL_PREFIX + _ORIGINAL_MARKER in state_dict else ""
        if prefix + _ORIGINAL_MARKER not in state_dict:
            raise ControlNetFileError(f"{source}: not a ControlNet (no input_hint_block or controlnet_cond_embedding)")
        config = detect_original_config(state_dict, prefix, source)
    if "difference" in state_dict:
        state_dict = _add_base_weights(state_dict, prefix, base_model, source)
    shapes = hint_block_shapes(state_dict, prefix)
    return load_weights(lambda cfg: ControlNetModel(cfg, shapes), config, state_dict, prefix, source)


def _add_base_weights(state_dict: Mapping[str, Tensor], prefix: str, base_model: Any,
                      source: Path | str) -> dict[str, Tensor]:
    """A diff ControlNet's weights plus the base UNet's (as the base model computes now, LoRAs included)."""
    if base_model is None:
        raise ControlNetFileError(f"{source} is a diff ControlNet: load it with a model (DiffControlNetLoader)")
    from diffusion.lora.patching import apply_weight_patches

    apply_weight_patches(base_model.unet, base_model.patches)
    base = base_model.unet.state_dict()
    merged = {}
    for key, tensor in state_dict.items():
        name = key[len(prefix):] if key.startswith(prefix) else key
        if key.startswith(prefix) and name in base:
            tensor = tensor + base[name].to(tensor.device, tensor.dtype)
        merged[key] = tensor
    return merged


def load_controlnet(path: str | Path, devices: Any, base_model: Any = None) -> Any:
    """A CONTROL_NET value from a file: a `ControlNet` or, for adapter files, a `T2IAdapter` control.

    Raises:
        ControlNetFileError, diffusion.loading.CheckpointError: the file names itself in the message.
    """
    from diffusion.controlnet.t2i_adapter import is_t2i_adapter, t2i_adapter_from_state_dict
    from diffusion.loading.files import read_state_dict

    path = Path(path)
    state_dict = read_state_dict(path)
    if is_t2i_adapter(state_dict):
        return t2i_adapter_from_state_dict(state_dict, devices, path)
    model = controlnet_model_from_state_dict(state_dict, path, base_model)
    log.info("loaded ControlNet from %s", path)
    return ControlNet(model, devices)
