"""Building MODEL, CLIP and VAE values from weight files (comfy-compat §9 loaders, §11.4).

A single-file SD checkpoint holds three models under three prefixes:
`model.diffusion_model.` (UNet), `first_stage_model.` (VAE) and `cond_stage_model.` (text
encoder). Each model class's attribute paths are the keys after its prefix, so weights load
by name with shape checks. Modules are built on the meta device and take the file's tensors
as they are (`assign=True`): an fp16 file stays a single fp16 copy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from diffusion.devices import DeviceManager
from diffusion.diffusion_model import DiffusionModel
from diffusion.loading.detect import (
    TEXT_ENCODER_PREFIX, detect_family, detect_vae_config, unet_prefix, vae_prefix,
)
from diffusion.loading.errors import CheckpointError, UnsupportedModel
from diffusion.loading.files import read_state_dict
from diffusion.models.unet import UNetModel
from diffusion.models.vae import AutoencoderKL
from diffusion.vae_model import VAE

log = logging.getLogger(__name__)

_LISTED_KEYS = 5


def load_weights(module_factory: Any, config: Any, state_dict: Mapping[str, Tensor], prefix: str,
                 source: Path | str) -> nn.Module:
    """Build `module_factory(config)` from the tensors under `prefix`, checking names and shapes.

    A `[out, in]` tensor fills a `[out, in, 1, 1]` convolution and vice versa (checkpoints
    converted from diffusers store the VAE's attention projections as linear weights).

    Raises:
        CheckpointError: missing tensors or tensors of the wrong shape, naming the file.
    """
    with torch.device("meta"):
        module = module_factory(config)
    tensors: dict[str, Tensor] = {}
    missing: list[str] = []
    mismatched: list[str] = []
    for name, expected in module.state_dict().items():
        key = prefix + name
        if key not in state_dict:
            missing.append(key)
            continue
        tensor = state_dict[key]
        if tensor.shape != expected.shape:
            if tensor.numel() == expected.numel() and tensor.squeeze().shape == expected.squeeze().shape:
                tensor = tensor.reshape(expected.shape)
            else:
                mismatched.append(f"{key}: file {tuple(tensor.shape)}, model {tuple(expected.shape)}")
                continue
        tensors[name] = tensor
    if missing or mismatched:
        problems = [f"missing {k}" for k in missing[:_LISTED_KEYS]] + mismatched[:_LISTED_KEYS]
        raise CheckpointError(
            f"{source}: the weights do not fit a {type(module).__name__} "
            f"({len(missing)} missing, {len(mismatched)} of the wrong shape): " + "; ".join(problems))
    module.load_state_dict(tensors, strict=True, assign=True)
    return module.eval().requires_grad_(False)


def _model_sampling(prediction_type: str) -> Any:
    from diffusion.sampling.model_sampling import ModelSamplingDiscrete

    return ModelSamplingDiscrete(prediction_type=prediction_type)


def diffusion_model_from_state_dict(state_dict: Mapping[str, Tensor], prefix: str, devices: DeviceManager,
                                    source: Path | str, weight_dtype: torch.dtype | None = None) -> DiffusionModel:
    """The MODEL value for the UNet under `prefix` (family, prediction type and config detected)."""
    family = detect_family(state_dict, prefix, source)
    unet = load_weights(UNetModel, family.unet, state_dict, prefix, source)
    if weight_dtype is not None:
        _store_matrices_as(unet, weight_dtype)
    log.info("loaded %s UNet (%s prediction) from %s", family.name, family.prediction_type, source)
    return DiffusionModel(unet, _model_sampling(family.prediction_type), family.latent_format, devices, family.name)


def _store_matrices_as(module: nn.Module, dtype: torch.dtype) -> None:
    """Keep linear and convolution weights in a storage dtype such as fp8 (cast per layer when used)."""
    for param in module.parameters():
        if param.ndim >= 2:
            param.data = param.data.to(dtype)


def vae_from_state_dict(state_dict: Mapping[str, Tensor], prefix: str, devices: DeviceManager,
                        source: Path | str) -> VAE:
    """The VAE value for the autoencoder under `prefix`."""
    config = detect_vae_config(state_dict, prefix, source)
    return VAE(load_weights(AutoencoderKL, config, state_dict, prefix, source), devices)


def _text_encoder(state_dict: Mapping[str, Tensor], prefix: str, devices: DeviceManager,
                  embeddings_dirs: Iterable[Path], source: Path) -> Any:
    from diffusion.text_encoder import text_encoder_from_state_dict

    try:
        return text_encoder_from_state_dict(dict(_with_prefix(state_dict, prefix)), prefix, devices,
                                            embedding_dirs=[Path(d) for d in embeddings_dirs])
    except ValueError as error:
        if str(source) in str(error):
            raise
        raise CheckpointError(f"{source}: {error}") from error


def _with_prefix(state_dict: Mapping[str, Tensor], prefix: str) -> Iterable[tuple[str, Tensor]]:
    """Only the tensors under a prefix (read lazily from a safetensors file)."""
    return ((key, state_dict[key]) for key in state_dict if key.startswith(prefix))


def load_checkpoint(path: str | Path, devices: DeviceManager, embeddings_dirs: Iterable[Path] = (),
                    output_vae: bool = True, output_clip: bool = True) -> tuple[DiffusionModel, Any, VAE | None]:
    """Split a single-file checkpoint into MODEL, CLIP and VAE (CheckpointLoaderSimple).

    Returns:
        `(model, text_encoder, vae)`; the text encoder or VAE is None when the file has none
        or it was not asked for.

    Raises:
        CheckpointError: unreadable file, unsafe pickle, wrong shapes (naming the file).
        UnsupportedModel: a family Kiln does not implement.
    """
    path = Path(path)
    state_dict = read_state_dict(path)
    model = diffusion_model_from_state_dict(state_dict, unet_prefix(state_dict), devices, path)
    vae = None
    if output_vae:
        prefix = vae_prefix(state_dict)
        if prefix is None:
            log.warning("%s has no VAE (no first_stage_model. keys)", path)
        else:
            vae = vae_from_state_dict(state_dict, prefix, devices, path)
            vae.latent_format = model.latent_format
    text_encoder = None
    if output_clip:
        if any(key.startswith(TEXT_ENCODER_PREFIX) for key in state_dict):
            text_encoder = _text_encoder(state_dict, TEXT_ENCODER_PREFIX, devices, embeddings_dirs, path)
        else:
            log.warning("%s has no text encoder (no cond_stage_model. keys)", path)
    return model, text_encoder, vae


def load_unet(path: str | Path, devices: DeviceManager, weight_dtype: torch.dtype | None = None) -> DiffusionModel:
    """A diffusion-model-only file (or a checkpoint's UNet) as a MODEL (UNETLoader).

    Args:
        weight_dtype: store matrices in this dtype (e.g. `torch.float8_e4m3fn`), None to keep the file's.
    """
    path = Path(path)
    state_dict = read_state_dict(path)
    return diffusion_model_from_state_dict(state_dict, unet_prefix(state_dict), devices, path, weight_dtype)


def load_vae(path: str | Path, devices: DeviceManager) -> VAE:
    """A VAE file, or the VAE inside a checkpoint (VAELoader)."""
    path = Path(path)
    state_dict = read_state_dict(path)
    prefix = vae_prefix(state_dict)
    if prefix is None:
        raise UnsupportedModel(f"{path}: no KL autoencoder found (expected encoder.* and decoder.* tensors)")
    return vae_from_state_dict(state_dict, prefix, devices, path)


def load_text_encoder(path: str | Path, devices: DeviceManager, embeddings_dirs: Iterable[Path] = ()) -> Any:
    """A text-encoder file, or the text encoder inside a checkpoint, as a CLIP value (CLIPLoader).

    Standalone files keep the encoder's own layout at the top level (`text_model.*` for
    CLIP-L); the text encoder finds it from the keys.
    """
    path = Path(path)
    state_dict = read_state_dict(path)
    has_checkpoint_prefix = any(key.startswith(TEXT_ENCODER_PREFIX) for key in state_dict)
    prefix = TEXT_ENCODER_PREFIX if has_checkpoint_prefix else ""
    return _text_encoder(state_dict, prefix, devices, embeddings_dirs, path)
