"""What a running node can reach: its ids, a progress reporter, the interrupt flag, resources.

ComfyUI reaches a global server and a global interrupt flag from deep inside nodes; Kiln puts
a ``NodeContext`` into a ``contextvars.ContextVar`` for the duration of each node call
(sync or async, since asyncio tasks copy the context they were created in).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PreviewImage = tuple[str, Any, int]
"""``(format "JPEG"|"PNG", PIL.Image.Image, max_size)``, as ComfyUI's progress hook takes it."""


class Interrupted(Exception):
    """Raised inside a node when the user interrupted the prompt (comfy-compat §6.9)."""


class InterruptFlag:
    """Thread-safe interrupt request, set by /interrupt and checked by the running prompt."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise ``Interrupted`` if set, clearing the flag so it stops only one prompt."""
        if self._event.is_set():
            self._event.clear()
            raise Interrupted("Processing interrupted")


ProgressCallback = Callable[[int, int, "PreviewImage | None"], None]


class ProgressReporter:
    """Reports a node's step progress; every report is also an interrupt check point."""

    def __init__(self, on_progress: ProgressCallback, interrupt: InterruptFlag) -> None:
        self._on_progress = on_progress
        self._interrupt = interrupt

    def progress(self, value: int, total: int, preview: PreviewImage | None = None) -> None:
        self._interrupt.check()
        self._on_progress(int(value), int(total), preview)


@dataclass
class NodeContext:
    """The running node's view of the prompt being executed."""

    prompt_id: str
    node_id: str
    display_node_id: str
    reporter: ProgressReporter
    interrupt: InterruptFlag
    resources: Mapping[str, Any] = field(default_factory=dict)
    parent_node_id: str | None = None
    real_node_id: str | None = None


_current: contextvars.ContextVar[NodeContext | None] = contextvars.ContextVar("kiln_node_context", default=None)


def current_context() -> NodeContext | None:
    """The context of the node running in this thread or task, or None outside a node."""
    return _current.get()


class use_context(contextlib.AbstractContextManager):  # noqa: N801 -- used like a function
    """Make ``context`` current for the ``with`` block (the executor wraps each node call).

    A class rather than a generator-based context manager: it is entered for every node call.
    """

    __slots__ = ("_context", "_token")

    def __init__(self, context: NodeContext | None) -> None:
        self._context = context

    def __enter__(self) -> NodeContext | None:
        self._token = _current.set(self._context)
        return self._context

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._token)
