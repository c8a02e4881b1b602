"""The server's recent log lines, for ``/internal/logs`` and the editor's log panel.

ComfyUI keeps the last log records in memory and streams new ones as ``logs`` websocket
events to clients that subscribed with ``PATCH /internal/logs/subscribe`` (comfy-compat §1.2,
frontend event type ``logs``). One :class:`LogBuffer` belongs to one server state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

LogSender = Callable[[str, dict, str | None], None]  # hub.send_sync(event, data, sid)


class LogBuffer(logging.Handler):
    """A logging handler that keeps the last ``capacity`` lines and forwards new ones."""

    def __init__(self, capacity: int = 300) -> None:
        super().__init__(level=logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._entries: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._subscribers: set[str] = set()
        self._lock = threading.Lock()
        self._sending = threading.local()
        self.send: LogSender | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._sending, "active", False):
            return  # a log line written while forwarding one must not loop back
        try:
            entry = {"t": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created)), "m": self.format(record) + "\n"}
        except Exception:  # noqa: BLE001 -- logging must never raise into the caller
            self.handleError(record)
            return
        with self._lock:
            self._entries.append(entry)
            subscribers = list(self._subscribers)
        if subscribers and self.send is not None:
            self._sending.active = True
            try:
                for client_id in subscribers:
                    self.send("logs", {"entries": [entry], "size": self.size()}, client_id)
            finally:
                self._sending.active = False

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)

    def text(self) -> str:
        """Every kept line joined, as ``GET /internal/logs`` returns it."""
        return "".join(entry["m"] for entry in self.entries())

    def size(self) -> dict[str, int | None]:
        """The terminal size ComfyUI reports with raw logs; Kiln has no terminal of its own."""
        return {"cols": None, "rows": None}

    def subscribe(self, client_id: str, enabled: bool) -> None:
        with self._lock:
            if enabled:
                self._subscribers.add(client_id)
            else:
                self._subscribers.discard(client_id)

    def subscribers(self) -> set[str]:
        with self._lock:
            return set(self._subscribers)
