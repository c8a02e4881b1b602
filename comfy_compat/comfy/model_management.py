"""``comfy.model_management`` for ComfyUI plugins: interrupts and the compute device.

ComfyUI keeps a global interrupt flag here (comfy-compat §6.9); Kiln's flag lives in the
running node's ``NodeContext`` (or the server's, outside a node), reached through
``kiln_host``. The device comes from the server's lazily created ``DeviceManager``.
"""

from __future__ import annotations

import gc
from typing import Any

from kiln_host import current_interrupt, current_resources


def _interrupted_class() -> type[BaseException]:
    from engine.context import Interrupted

    return Interrupted


def __getattr__(name: str) -> Any:
    if name == "InterruptProcessingException":
        return _interrupted_class()
    if name == "interrupt_processing":  # ComfyUI's global flag, read as a bool
        return processing_interrupted()
    raise AttributeError(f"module 'comfy.model_management' has no attribute {name!r}")


def interrupt_current_processing(value: bool = True) -> None:
    flag = current_interrupt()
    if flag is None:
        return
    flag.set() if value else flag.clear()


def processing_interrupted() -> bool:
    flag = current_interrupt()
    return bool(flag is not None and flag.is_set())


def throw_exception_if_processing_interrupted() -> None:
    flag = current_interrupt()
    if flag is not None:
        flag.check()


def _devices() -> Any:
    return current_resources()["devices"]


def get_torch_device() -> Any:
    """The device the server computes on (cuda, mps or cpu), created on first use."""
    import torch

    device = getattr(_devices(), "device", None)
    return device if device is not None else torch.device("cpu")


def intermediate_device() -> Any:
    import torch

    return torch.device("cpu")


def unet_offload_device() -> Any:
    return intermediate_device()


def unload_all_models() -> None:
    _devices().unload_all()


def soft_empty_cache(force: bool = False) -> None:
    gc.collect()
    import sys

    torch = sys.modules.get("torch")  # only if something already paid for importing it
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
