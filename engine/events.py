"""What one prompt's run reports: the sink its events go to, its history messages, progress.

``RunEvents`` wraps the worker's ``EventSink`` for one prompt. Events that belong in the
history entry's status messages (comfy-compat §1.4) go through ``message``; the per-node
``progress_state`` map and ``progress`` events (§2.1) through ``set_progress`` and
``report_progress``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from engine.context import PreviewImage

Lineage = tuple[str, "str | None", str]
"""``(display_node_id, parent_node_id, real_node_id)`` of a node."""


class EventSink(Protocol):
    """Where a prompt's events go (bound to one prompt's client by the worker)."""

    def send(self, event: str, data: dict) -> None: ...
    def send_preview(self, preview: PreviewImage, meta: dict) -> None: ...


@dataclass
class ExecutionResult:
    """What the history entry of a prompt needs (comfy-compat §1.4): status, messages, UI, meta."""

    status_str: str
    completed: bool
    messages: list[list] = field(default_factory=list)
    outputs: dict[str, dict] = field(default_factory=dict)
    meta: dict[str, dict] = field(default_factory=dict)


def now_ms() -> int:
    return int(time.time() * 1000)


class RunEvents:
    """One prompt's events: sent to the sink, status messages kept for the history entry."""

    def __init__(self, sink: EventSink, prompt_id: str, lineage: Callable[[str], Lineage]) -> None:
        self.sink = sink
        self.prompt_id = prompt_id
        self.lineage = lineage
        self.messages: list[list] = []
        self.progress: dict[str, dict] = {}

    def send(self, event: str, data: dict) -> None:
        self.sink.send(event, data)

    def message(self, event: str, data: dict) -> None:
        """An event that also goes into the history entry's status messages (§1.4)."""
        data["timestamp"] = now_ms()
        self.messages.append([event, data])
        self.sink.send(event, data)

    def set_progress(self, node_id: str, state: str, value: float | None = None, maximum: float | None = None) -> None:
        """Update one node's entry and send every non-pending node's state (§2.1 progress_state)."""
        previous = self.progress.get(node_id)
        if maximum is None:
            maximum = previous["max"] if previous else 1
        if value is None:
            value = maximum if state == "finished" else (previous["value"] if previous else 0)
        display_id, parent_id, real_id = self.lineage(node_id)
        self.progress[node_id] = {
            "value": value, "max": maximum, "state": state, "node_id": node_id, "prompt_id": self.prompt_id,
            "display_node_id": display_id, "parent_node_id": parent_id, "real_node_id": real_id,
        }
        # A copy: sinks may serialise later, and the next update must not change this message.
        self.sink.send("progress_state", {"prompt_id": self.prompt_id, "nodes": dict(self.progress)})

    def report_progress(self, node_id: str, value: int, total: int, preview: PreviewImage | None) -> None:
        """A node's ``progress`` event, its progress_state entry, and its preview if any."""
        display_id, parent_id, real_id = self.lineage(node_id)
        self.sink.send("progress", {"value": value, "max": total, "prompt_id": self.prompt_id, "node": display_id})
        self.set_progress(node_id, "running", value, total)
        if preview is not None:
            meta = {
                "node_id": node_id, "prompt_id": self.prompt_id, "display_node_id": display_id,
                "parent_node_id": parent_id, "real_node_id": real_id,
            }
            self.sink.send_preview(preview, meta)
