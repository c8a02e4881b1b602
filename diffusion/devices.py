"""Where models live and in what dtype they compute: one `DeviceManager` per server, no module state.

ComfyUI keeps this in import-time globals parsed from the command line; Kiln keeps it in an
object that a test can create twice (STYLE.md). Weights stay in the dtype they were loaded
in (an fp16 file is one fp16 copy); Kiln's layers cast them per call to the compute dtype
(`diffusion.models.layers`), so the compute dtype is a property of the manager, not of the
weights.

Loadable models are `torch.nn.Module`s or objects with a `torch_modules()` method listing
theirs (the MODEL, CLIP and VAE values).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

# Activations of a UNet/VAE step need headroom beyond the weights themselves.
_RESERVED_BYTES = 512 * 1024 * 1024


def pick_device(cpu: bool = False) -> torch.device:
    """cuda, then Apple's mps, then the CPU (`cpu=True` forces the CPU)."""
    if not cpu and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    mps = getattr(torch.backends, "mps", None)
    if not cpu and mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def modules_of(model: Any) -> list[nn.Module]:
    """The torch modules behind a loadable value."""
    if isinstance(model, nn.Module):
        return [model]
    if hasattr(model, "torch_modules"):
        return list(model.torch_modules())
    raise TypeError(f"{type(model).__name__} is not a torch module and has no torch_modules()")


def module_bytes(module: nn.Module) -> int:
    """Bytes held by a module's parameters and buffers."""
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


class DeviceManager:
    """Chooses the compute device and dtypes; moves models on and off it.

    Args:
        cpu: run everything on the CPU even when an accelerator exists.
        force_fp32: compute in float32 everywhere (exact, slower on GPUs).
        cpu_dtype: compute dtype on the CPU. float32 by default: bfloat16 is faster on
            CPUs with AVX-512 BF16/AMX (measured ~1.3× on a tiny UNet here) but changes
            outputs by ~1e-2, so it is an opt-in.
    """

    def __init__(self, cpu: bool = False, force_fp32: bool = False,
                 cpu_dtype: torch.dtype = torch.float32):
        self.device = pick_device(cpu)
        self.offload_device = torch.device("cpu")
        self.force_fp32 = force_fp32
        self._cpu_dtype = cpu_dtype
        self.reserved_bytes = _RESERVED_BYTES
        self._loaded: list[nn.Module] = []  # most recently used last

    # -- dtypes ------------------------------------------------------------------------

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype the diffusion model and text encoder compute in."""
        if self.force_fp32:
            return torch.float32
        if self.device.type == "cuda":
            return torch.float16
        if self.device.type == "mps":
            return torch.float16
        return self._cpu_dtype

    @property
    def vae_dtype(self) -> torch.dtype:
        """The VAE's compute dtype: fp16 VAEs overflow to NaN, so bf16 where supported, else fp32."""
        if self.force_fp32 or self.device.type == "mps":
            return torch.float32
        if self.device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        return self._cpu_dtype

    # -- memory ------------------------------------------------------------------------

    def free_memory(self, device: torch.device | None = None) -> int:
        """Bytes free on a device (for the CPU: available physical memory)."""
        device = device or self.device
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            return int(free)
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return 8 * 1024**3

    def loaded_modules(self) -> list[nn.Module]:
        return list(self._loaded)

    # -- moving models -----------------------------------------------------------------

    def load(self, model: Any, extra_bytes: int = 0) -> None:
        """Put a model's weights on the compute device, offloading others when memory runs short.

        Args:
            model: an `nn.Module` or an object with `torch_modules()`.
            extra_bytes: memory the coming computation needs beyond the weights.
        """
        for module in modules_of(model):
            if module in self._loaded:
                self._loaded.remove(module)
                self._loaded.append(module)
                continue
            if self.device != self.offload_device:
                needed = module_bytes(module) + extra_bytes + self.reserved_bytes
                self._make_room(needed, keep=module)
                module.to(self.device)
            self._loaded.append(module)

    def unload(self, model: Any) -> None:
        """Move a model back to the offload device (the CPU)."""
        for module in modules_of(model):
            if module in self._loaded:
                self._loaded.remove(module)
                if self.device != self.offload_device:
                    module.to(self.offload_device)
        self._empty_cache()

    def unload_all(self) -> None:
        """Offload every model (ComfyUI's /free with unload_models)."""
        for module in list(self._loaded):
            self.unload(module)

    def _make_room(self, needed: int, keep: nn.Module) -> None:
        while self._loaded and self.free_memory() < needed:
            victim = next((m for m in self._loaded if m is not keep), None)
            if victim is None:
                break
            log.info("offloading %s to make room on %s", type(victim).__name__, self.device)
            self.unload(victim)

    def _empty_cache(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    # -- running -----------------------------------------------------------------------

    @contextlib.contextmanager
    def inference(self) -> Iterator[None]:
        """Context for model calls: no autograd bookkeeping."""
        with torch.inference_mode():
            yield

    def is_out_of_memory(self, error: BaseException) -> bool:
        """Whether an exception is the device running out of memory (tiling fallback)."""
        if isinstance(error, torch.cuda.OutOfMemoryError):
            return True
        return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()

    def __repr__(self) -> str:
        return f"DeviceManager(device={self.device}, compute_dtype={self.compute_dtype})"
