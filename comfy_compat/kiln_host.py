"""The one link from ComfyUI's module-level API to a Kiln server's objects.

ComfyUI plugins call plain module functions (``folder_paths.get_filename_list``,
``comfy.model_management.interrupt_current_processing``) with no server argument, often at
import or ``INPUT_TYPES`` time, outside any running node. Kiln keeps its state in objects,
so the shims need one place to find "the server's" folders, resources and interrupt flag.
That place is this slot; its only writer is ``server.py`` (``install``), once at start-up.
Inside a running node the shims prefer ``engine.context.current_context()``, so two
servers in one process (tests) still see their own objects while executing.

The host's ``registry`` is filled by the plugin loader (``engine.plugins.load_plugins``) just
before it imports the first plugin, so ``nodes.NODE_CLASS_MAPPINGS`` (a ``RegistryView``)
already lists the built-ins when a plugin reads it at import time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CompatHost:
    """What the shims reach: ``resources`` as given to NodeContext, plus the interrupt flag."""

    resources: Mapping[str, Any] = field(default_factory=dict)
    interrupt: Any = None  # engine.context.InterruptFlag
    registry: Any = None  # engine.registry.NodeRegistry, set by the plugin loader

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


def current_registry() -> Any:
    """The installed server's node registry; error if the plugin loader has not set it."""
    host = _SLOT.host
    if host is None or host.registry is None:
        raise RuntimeError("nodes.NODE_CLASS_MAPPINGS is read before the server registered its nodes")
    return host.registry


class RegistryView(Mapping):
    """A live, read-only view of one of the registry's dicts (``classes`` or ``display_names``).

    ComfyUI plugins read ``nodes.NODE_CLASS_MAPPINGS`` to reuse core nodes; every access goes
    to the registry at that moment, so nodes registered later show up too.
    """

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def _target(self) -> Mapping:
        return getattr(current_registry(), self.attribute)

    def __getitem__(self, key: str) -> Any:
        return self._target()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._target()))

    def __len__(self) -> int:
        return len(self._target())

    def __repr__(self) -> str:
        return f"RegistryView({self.attribute!r}, {len(self)} entries)"
