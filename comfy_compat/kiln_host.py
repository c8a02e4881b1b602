"""The one link from ComfyUI's module-level API to a Kiln server's objects.

ComfyUI plugins call plain module functions (``folder_paths.get_filename_list``,
``comfy.model_management.interrupt_current_processing``) with no server argument, often at
import or ``INPUT_TYPES`` time, outside any running node. Kiln keeps its state in objects,
so the shims need one place to find "the server's" folders, resources and interrupt flag.
That place is this slot; its only writer is ``server.py`` (``install``), once at start-up.
Inside a running node the shims prefer ``engine.context.current_context()``, so two
servers in one process (tests) still see their own objects while executing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CompatHost:
    """What the shims reach: ``resources`` as given to NodeContext, plus the interrupt flag."""

    resources: Mapping[str, Any] = field(default_factory=dict)
    interrupt: Any = None  # engine.context.InterruptFlag

    @property
    def folders(self) -> Any:
        return self.resources["folders"]


class _HostSlot:
    """Holder for the installed host (see the module docstring for why this is global)."""

    host: CompatHost | None = None


_SLOT = _HostSlot()


def install(host: CompatHost) -> None:
    """Make ``host`` the one the shims use outside a running node (server start-up only)."""
    _SLOT.host = host


def installed() -> CompatHost | None:
    return _SLOT.host


def current_resources() -> Mapping[str, Any]:
    """The running node's resources, else the installed host's; error if neither exists."""
    context = _current_context()
    if context is not None:
        return context.resources
    if _SLOT.host is None:
        raise RuntimeError("Kiln's ComfyUI shims are used before the server installed its folders")
    return _SLOT.host.resources


def current_interrupt() -> Any:
    context = _current_context()
    if context is not None:
        return context.interrupt
    return _SLOT.host.interrupt if _SLOT.host is not None else None


def _current_context() -> Any:
    from engine.context import current_context

    return current_context()
