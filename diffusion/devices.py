"""Where models live and in what dtype they compute: one `DeviceManager` per server, no module state.

ComfyUI keeps this in import-time globals parsed from the command line; Kiln keeps it in an
object that a test can create twice (STYLE.md).

Weights are stored once. On the CPU in bfloat16 mode the loaders convert them to bfloat16 as
they read them (`storage_dtype`): an fp16 or fp32 file becomes a single bf16 copy, no larger
than the fp16 file, and no layer casts anything per call. Everywhere else weights stay in the
dtype they were loaded in and Kiln's layers cast them per call to the compute dtype
(`diffusion.models.layers`); when the dtypes agree nothing is copied.

Loadable models are `torch.nn.Module`s or objects with a `torch_modules()` method listing
theirs (the MODEL, CLIP and VAE values).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

log = logging.getLogger(__name__)

# Activations of a UNet/VAE step need headroom beyond the weights themselves.
_RESERVED_BYTES = 512 * 1024 * 1024

# /proc/cpuinfo flags of the instructions oneDNN uses for bfloat16 matmuls and convolutions
# (Intel Cooper Lake / Sapphire Rapids and later, AMD Zen 4 and later).
FAST_BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})

CpuPrecision = Literal["auto", "bf16", "fp32"]
CPU_PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The feature flags of the first CPU listed in `/proc/cpuinfo` (empty where there is none)."""
    try:
        with cpuinfo.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def cpu_has_fast_bf16(flags: Iterable[str] | None = None) -> bool:
    """Whether bfloat16 matmuls run natively on this CPU (AMX-BF16 or AVX-512 BF16) in torch.

    Measured on a Xeon with AMX: bf16 matmuls reached 209 GFLOPS against 27-38 in fp32, and
    an SD1.5 UNet step ran 2.4x faster. Without those instructions torch emulates bf16 by
    converting to fp32, which is slower than fp32 itself.

    Args:
        flags: CPU feature flags; read from `/proc/cpuinfo` (then asked of torch) when None.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    if flags is not None:
        return not FAST_BF16_CPU_FLAGS.isdisjoint(flags)
    if not FAST_BF16_CPU_FLAGS.isdisjoint(cpu_flags()):
        return True
    # Where /proc/cpuinfo is missing (macOS, Windows) torch can still tell.
    probes = (getattr(torch.cpu, "_is_amx_tile_supported", None), getattr(torch.cpu, "_is_avx512_bf16_supported", None))
    return any(probe is not None and probe() for probe in probes)


def cpu_compute_dtype(precision: CpuPrecision = "auto") -> torch.dtype:
    """The CPU compute dtype for a `--cpu-bf16` / `--cpu-fp32` choice ("auto": bf16 where fast)."""
    if precision not in CPU_PRECISIONS:
        raise ValueError(f"unknown CPU precision {precision!r}; expected one of {CPU_PRECISIONS}")
    if precision == "bf16" or (precision == "auto" and cpu_has_fast_bf16()):
        return torch.bfloat16
    return torch.float32


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
        force_fp32: compute in float32 everywhere (exact agreement with ComfyUI; slower).
        cpu_dtype: compute dtype of the UNet and VAE on the CPU. float32 here, so a manager
            made without arguments computes exactly; the server passes
            `cpu_compute_dtype("auto")`, which is bfloat16 on CPUs with AMX/AVX-512 BF16
            (2-3x faster for SD1.5; outputs differ from fp32 by ~1e-2 relative).
    """

    def __init__(self, cpu: bool = False, force_fp32: bool = False,
                 cpu_dtype: torch.dtype = torch.float32):
        self.device = pick_device(cpu)
        self.offload_device = torch.device("cpu")
        self.force_fp32 = force_fp32
        self._cpu_dtype = cpu_dtype
        self.cpu_prepack = os.environ.get("KILN_CPU_PREPACK", "1") != "0"
        self.reserved_bytes = _RESERVED_BYTES
        self._loaded: list[nn.Module] = []  # most recently used last

    # -- dtypes ------------------------------------------------------------------------

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype the diffusion model (and ControlNets) compute in."""
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

    @property
    def text_encoder_dtype(self) -> torch.dtype:
        """The text encoder's compute dtype: float32 on the CPU, where it runs once per prompt
        and costs little, so the conditioning matches ComfyUI's; the compute dtype elsewhere."""
        if self.device.type == "cpu":
            return torch.float32
        return self.compute_dtype

    def conv_memory_format(self, compute_dtype: torch.dtype) -> torch.memory_format:
        """The layout to store convolution weights in for a model computing in `compute_dtype`.

        channels_last on the CPU in bfloat16: oneDNN's bf16 kernels work in NHWC, and a
        channels_last weight makes every convolution take and give NHWC activations instead
        of reordering them on each call (measured here: SD VAE decode at 256² 8.0 s -> 3.0 s,
        SD1.5 UNet step 4.5 s -> 3.9 s). Elsewhere the default layout, so fp32 stays bit-exact.
        """
        if self.device.type == "cpu" and compute_dtype == torch.bfloat16:
            return torch.channels_last
        return torch.contiguous_format

    def pack_weights(self, compute_dtype: torch.dtype) -> bool:
        """Whether to keep convolution and linear weights packed for oneDNN (`diffusion.models.packing`).

        On the CPU in bfloat16, where oneDNN would otherwise reorder every weight on every call
        (measured here: an SD1.5 UNet step 1.39 s -> 0.89 s of CPU time; outputs agree to bf16
        rounding). `KILN_CPU_PREPACK=0` turns it off, for comparisons.
        """
        if self.device.type != "cpu" or compute_dtype != torch.bfloat16 or not self.cpu_prepack:
            return False
        from diffusion.models.packing import packing_supported

        return packing_supported()

    def storage_dtype(self, compute_dtype: torch.dtype) -> torch.dtype | None:
        """The dtype a loader should convert weights to for a model computing in `compute_dtype`.

        On the CPU in a half-precision mode: that dtype, so the weights exist once, in the
        dtype they compute in (no per-call casts, no fp32 copy). Otherwise None: keep the
        file's dtype (an fp16 file stays fp16; the layers cast per call, exactly).
        """
        if self.device.type == "cpu" and compute_dtype != torch.float32:
            return compute_dtype
        return None

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
        return (f"DeviceManager(device={self.device}, compute_dtype={self.compute_dtype}, "
                f"vae_dtype={self.vae_dtype})")
