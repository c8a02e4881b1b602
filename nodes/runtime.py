"""What node code can reach of the running server: folders, options, devices, progress.

Node functions never touch module globals or a server singleton (DESIGN.md, "What ComfyUI
teaches by counter-example"). The executor runs each node inside a ``NodeContext``
(ARCHITECTURE.md, "engine/context.py") whose ``resources`` mapping holds the server's
``ModelFolders``, its options and its device manager; these helpers read that context so node
modules stay short and tests can supply their own context with ``engine.context.use_context``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.context import current_context

if TYPE_CHECKING:
    from engine.context import NodeContext, PreviewImage
    from engine.folders import ModelFolders

__all__ = [
    "NoNodeContext",
    "check_interrupted",
    "devices",
    "folders",
    "node_context",
    "options",
    "progress",
]


class NoNodeContext(RuntimeError):
    """Node code asked for a server resource while no ``NodeContext`` was active."""


def node_context() -> NodeContext:
    """The context of the node running now; raises :class:`NoNodeContext` outside one."""
    context = current_context()
    if context is None:
        raise NoNodeContext(
            "no node context is active: run node code through the executor, or wrap it in "
            "engine.context.use_context(NodeContext(...))"
        )
    return context


def _resource(name: str) -> Any:
    resources = node_context().resources
    try:
        return resources[name]
    except KeyError:
        raise NoNodeContext(f"the node context has no {name!r} resource") from None


def folders() -> ModelFolders:
    """The server's model, input, output and temp folders (``resources["folders"]``)."""
    return _resource("folders")


def options() -> Mapping[str, Any]:
    """Server options such as ``disable_metadata``; empty (all defaults) when none were given."""
    return node_context().resources.get("options") or {}


def devices() -> Any:
    """The server's ``diffusion.devices.DeviceManager`` (``resources["devices"]``)."""
    return _resource("devices")


def progress(value: int, total: int, preview: PreviewImage | None = None) -> None:
    """Report ``value`` of ``total`` steps done, optionally with a preview image.

    The reporter also checks the interrupt flag, so a long loop that reports progress stops
    within one step of an interrupt. Outside a node context (a node called from a script)
    there is nobody to tell, and the call does nothing.
    """
    context = current_context()
    if context is not None:
        context.reporter.progress(value, total, preview)


def check_interrupted() -> None:
    """Raise the executor's ``Interrupted`` error if the user pressed Cancel."""
    context = current_context()
    if context is not None:
        context.interrupt.check()
