"""Reading weight files into state dicts (comfy-compat §11.3).

`.safetensors`/`.sft` are opened lazily: tensors are read (memory-mapped) when first used,
so splitting a checkpoint into its UNet, VAE and text encoder never holds two copies.
Every other extension goes through `torch.load(weights_only=True)`, which refuses pickles
that would run code; Kiln never falls back to an unsafe unpickler.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from diffusion.loading.errors import CheckpointError, UnsafeCheckpoint

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")


class LazySafetensors(Mapping[str, Tensor]):
    """A read-only state dict over a safetensors file; each tensor is read on access."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._file = safe_open(str(path), framework="pt", device="cpu")
            self._keys = list(self._file.keys())
            self._key_set = frozenset(self._keys)
            self.metadata: dict[str, str] = self._file.metadata() or {}
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"cannot read {path}: {_explain_safetensors(error)}") from error

    def __getitem__(self, key: str) -> Tensor:
        if key not in self._key_set:
            raise KeyError(key)
        try:
            return self._file.get_tensor(key)
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"cannot read tensor {key!r} from {self.path}: {error}") from error

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._key_set


def _explain_safetensors(error: Exception) -> str:
    text = str(error)
    if "HeaderTooLarge" in text or "MetadataIncompleteBuffer" in text or "incomplete" in text.lower():
        return f"the file is corrupt or was not fully downloaded ({text})"
    return text


class _LightningModelCheckpoint:
    """Stand-in for the `ModelCheckpoint` callback pickled inside original SD `.ckpt` files."""

    def __setstate__(self, state: object) -> None:
        self.state = state


def _allowed_globals() -> list:
    import codecs

    allowed: list = [(_LightningModelCheckpoint, "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"),
                     codecs.encode]
    try:
        import numpy as np

        allowed += [np.dtype, np.dtypes.Float64DType, (np._core.multiarray.scalar, "numpy.core.multiarray.scalar"),
                    np._core.multiarray.scalar]
    except (ImportError, AttributeError):
        pass
    return allowed


def _load_pickle(path: Path) -> dict:
    try:
        with torch.serialization.safe_globals(_allowed_globals()):
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=_is_zip(path))
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpoint(
            f"refused to load {path}: it contains pickled Python objects other than tensors, which "
            f"could run code. Convert it to .safetensors from a trusted source. ({_first_line(error)})"
        ) from error
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as error:
        raise CheckpointError(f"cannot read {path}: the file is corrupt or truncated ({_first_line(error)})") from error
    return _unwrap(loaded, path)


def _is_zip(path: Path) -> bool:
    return zipfile.is_zipfile(path)


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _unwrap(loaded: object, path: Path) -> dict:
    """Lightning checkpoints keep weights under "state_dict"; others wrap them in one key."""
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    elif isinstance(loaded, dict) and len(loaded) == 1:
        (only,) = loaded.values()
        if isinstance(only, dict):
            loaded = only
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path} does not hold a state dict (found {type(loaded).__name__})")
    return {k: v for k, v in loaded.items() if isinstance(v, Tensor)}


def read_state_dict(path: str | Path) -> Mapping[str, Tensor]:
    """The tensors of a weight file, by name.

    Args:
        path: a `.safetensors`/`.sft` file (read lazily) or a pickled torch file
            (`.ckpt`, `.pt`, `.pth`, `.bin`, ...), loaded with `weights_only=True`.

    Raises:
        CheckpointError: missing, corrupt or truncated file (the message names it).
        UnsafeCheckpoint: a pickle that would need arbitrary code to load.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such weight file: {path}")
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        return LazySafetensors(path)
    return _load_pickle(path)


def file_metadata(state_dict: Mapping[str, Tensor]) -> dict[str, str]:
    """The safetensors `__metadata__` of a state dict from `read_state_dict` ({} for pickles)."""
    return getattr(state_dict, "metadata", {})
