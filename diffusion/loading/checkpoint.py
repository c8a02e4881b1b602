"""Building MODEL, CLIP and VAE values from weight files (comfy-compat §9 loaders, §11.4).

A single-file SD checkpoint holds three models under three prefixes:
`model.diffusion_model.` (UNet), `first_stage_model.` (VAE) and `cond_stage_model.` (text
encoder). Each model class's attribute paths are the keys after its prefix, so weights load
by name with shape checks. Modules are built on the meta device and take the file's tensors
(`assign=True`), each converted as it is read to the dtype the `DeviceManager` wants weights
stored in (`DeviceManager.storage_dtype`), or kept as they are: either way one copy.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from diffusion.devices import DeviceManager
from diffusion.diffusion_model import DiffusionModel
from diffusion.latent_formats import LatentFormat, with_file_preview_factors
from diffusion.loading.detect import (
    TEXT_ENCODER_PREFIX, detect_family, detect_vae_config, unet_prefix, vae_prefix,
)
from diffusion.loading.errors import CheckpointError, UnsupportedModel
from diffusion.loading.files import LazySafetensors, file_metadata, read_state_dict
from diffusion.models.packing import pack_module
from diffusion.models.unet import UNetModel
from diffusion.models.vae import AutoencoderKL
from diffusion.vae_model import VAE

log = logging.getLogger(__name__)

_LISTED_KEYS = 5

_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}


class _UnmappedSafetensors(Mapping[str, Tensor]):
    """A safetensors file read tensor by tensor with plain reads instead of a memory map.

    For weights that are converted as they load: pages of a mapped file that were read stay
    in the process's resident set while any tensor still maps the file (the text encoder's
    do), so converting through the map holds the file and the converted copy at once
    (measured: SD1.5 to bf16 peaked at 4.4 GiB against 2.8 GiB). A read copy is freed as
    soon as it is converted. Format: little-endian u64 header size, JSON header, data.
    """

    def __init__(self, mapped: LazySafetensors):
        self.mapped = mapped
        with open(mapped.path, "rb") as file:
            (header_size,) = struct.unpack("<Q", file.read(8))
            header = json.loads(file.read(header_size))
        header.pop("__metadata__", None)
        self._entries: dict[str, dict] = header
        self._data_start = 8 + header_size

    def __getitem__(self, key: str) -> Tensor:
        entry = self._entries.get(key)
        if entry is None or entry["dtype"] not in _SAFETENSORS_DTYPES:
            return self.mapped[key]  # unknown here: let the mapped reader answer (or raise)
        begin, end = entry["data_offsets"]
        buffer = torch.empty(end - begin, dtype=torch.uint8)
        with open(self.mapped.path, "rb", buffering=0) as file:
            file.seek(self._data_start + begin)
            if file.readinto(buffer.numpy()) != end - begin:
                raise CheckpointError(f"{self.mapped.path}: tensor {key!r} is cut short")
        return buffer.view(_SAFETENSORS_DTYPES[entry["dtype"]]).reshape(entry["shape"])

    def __iter__(self) -> Iterator[str]:
        return iter(self.mapped)

    def __len__(self) -> int:
        return len(self.mapped)

    def __contains__(self, key: object) -> bool:
        return key in self.mapped


def _for_conversion(state_dict: Mapping[str, Tensor], dtype: torch.dtype | None) -> Mapping[str, Tensor]:
    """The state dict to read weights from when they are converted to `dtype` (None: kept as read)."""
    if dtype is not None and isinstance(state_dict, LazySafetensors):
        return _UnmappedSafetensors(state_dict)
    return state_dict


def load_weights(module_factory: Any, config: Any, state_dict: Mapping[str, Tensor], prefix: str,
                 source: Path | str, dtype: torch.dtype | None = None,
                 memory_format: torch.memory_format = torch.contiguous_format) -> nn.Module:
    """Build `module_factory(config)` from the tensors under `prefix`, checking names and shapes.

    A `[out, in]` tensor fills a `[out, in, 1, 1]` convolution and vice versa (checkpoints
    converted from diffusers store the VAE's attention projections as linear weights).

    Args:
        dtype: convert floating-point tensors to this dtype one by one as they are read (so
            the file's copy of each is freed before the next is read); None keeps the file's.
        memory_format: layout of 4-d (convolution) weights, e.g. `torch.channels_last`.

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
        tensors[name] = _stored(tensor, dtype, memory_format)
    if missing or mismatched:
        problems = [f"missing {k}" for k in missing[:_LISTED_KEYS]] + mismatched[:_LISTED_KEYS]
        raise CheckpointError(
            f"{source}: the weights do not fit a {type(module).__name__} "
            f"({len(missing)} missing, {len(mismatched)} of the wrong shape): " + "; ".join(problems))
    module.load_state_dict(tensors, strict=True, assign=True)
    return module.eval().requires_grad_(False)


def _stored(tensor: Tensor, dtype: torch.dtype | None, memory_format: torch.memory_format) -> Tensor:
    """A file tensor in the dtype and layout it is kept in (one conversion, no copy when it already is)."""
    if not tensor.is_floating_point():
        return tensor
    return tensor.to(dtype=dtype or tensor.dtype,
                     memory_format=memory_format if tensor.ndim == 4 else torch.contiguous_format)


def _model_sampling(prediction_type: str) -> Any:
    from diffusion.sampling.model_sampling import ModelSamplingDiscrete

    return ModelSamplingDiscrete(prediction_type=prediction_type)


def diffusion_model_from_state_dict(state_dict: Mapping[str, Tensor], prefix: str, devices: DeviceManager,
                                    source: Path | str, weight_dtype: torch.dtype | None = None) -> DiffusionModel:
    """The MODEL value for the UNet under `prefix` (family, prediction type and config detected)."""
    family = detect_family(state_dict, prefix, source)
    dtype = devices.compute_dtype
    storage = devices.storage_dtype(dtype)
    unet = load_weights(UNetModel, family.unet, _for_conversion(state_dict, storage), prefix, source,
                        storage, devices.conv_memory_format(dtype))
    if weight_dtype is not None:
        _store_matrices_as(unet, weight_dtype)
    if devices.pack_weights(dtype):
        pack_module(unet)
    log.info("loaded %s UNet (%s prediction) from %s", family.name, family.prediction_type, source)
    latent_format = _latent_format_of_file(family.latent_format, state_dict, source)
    return DiffusionModel(unet, _model_sampling(family.prediction_type), latent_format, devices, family.name)


def _latent_format_of_file(family_format: LatentFormat, state_dict: Mapping[str, Tensor],
                           source: Path | str) -> LatentFormat:
    """The family's latent format, with the preview factors the file's metadata may carry."""
    return with_file_preview_factors(family_format, file_metadata(state_dict), source)


def _store_matrices_as(module: nn.Module, dtype: torch.dtype) -> None:
    """Keep linear and convolution weights in a storage dtype such as fp8 (cast per layer when used)."""
    for param in module.parameters():
        if param.ndim >= 2:
            param.data = param.data.to(dtype)


def vae_from_state_dict(state_dict: Mapping[str, Tensor], prefix: str, devices: DeviceManager,
                        source: Path | str) -> VAE:
    """The VAE value for the autoencoder under `prefix`."""
    config = detect_vae_config(state_dict, prefix, source)
    dtype = devices.vae_dtype
    storage = devices.storage_dtype(dtype)
    autoencoder = load_weights(AutoencoderKL, config, _for_conversion(state_dict, storage), prefix, source,
                               storage, devices.conv_memory_format(dtype))
    if devices.pack_weights(dtype):
        pack_module(autoencoder)
    return VAE(autoencoder, devices)


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
