"""The ``resources`` mapping handed to every ``NodeContext`` (docs/ARCHITECTURE.md).

Some resources are expensive to create: the device manager imports torch. They are built
on first access, in whichever thread asks first (normally the worker, inside a node), so
``python server.py`` starts without torch. ``server.py`` supplies the factories (api/
itself imports no ``diffusion`` code).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any


class LazyResources(Mapping[str, Any]):
    """A read-only mapping whose values may come from factories run once, on first access."""

    def __init__(self, values: Mapping[str, Any], factories: Mapping[str, Callable[[], Any]]) -> None:
        self._values = dict(values)
        self._factories = dict(factories)
        self._lock = threading.Lock()

    def __getitem__(self, key: str) -> Any:
        if key in self._values:
            return self._values[key]
        if key not in self._factories:
            raise KeyError(key)
        with self._lock:
            if key not in self._values:
                self._values[key] = self._factories[key]()
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._values, *self._factories]))

    def __len__(self) -> int:
        return len(set(self._values) | set(self._factories))

    def is_created(self, key: str) -> bool:
        """Whether ``key`` holds a value already (without creating it)."""
        return key in self._values


def server_context(resources: Mapping[str, Any], interrupt: Any) -> Any:
    """A ``NodeContext`` for node code the server calls outside a prompt run.

    ``INPUT_TYPES`` (for ``/object_info``, validation, workflow compiling, plugin checks)
    may list files through ``resources["folders"]``; built-in nodes reach resources only
    through the current context, so the server provides one with no prompt or node id.
    """
    from engine.context import NodeContext, ProgressReporter

    return NodeContext(prompt_id="", node_id="", display_node_id="",
                       reporter=ProgressReporter(lambda value, total, preview: None, interrupt),
                       interrupt=interrupt, resources=resources)


def call_with_resources(resources: Mapping[str, Any], interrupt: Any, function: Callable[..., Any], *args: Any) -> Any:
    """Call ``function(*args)`` inside :func:`server_context` (blocking; use from a thread)."""
    from engine.context import use_context

    with use_context(server_context(resources, interrupt)):
        return function(*args)
