"""The durable prompt queue: pending and running prompts in SQLite (comfy-compat §1.3-§1.4, §6.11).

ComfyUI keeps its queue in a heap in memory and loses it on restart; Kiln writes every change
to an embedded SQLite database inside a transaction *before* the call returns, and mirrors
the rows in memory for fast reads. Behaviour follows ComfyUI's ``execution.PromptQueue``:

* items are ``(number, prompt_id, prompt, extra_data, outputs_to_execute)``; the lowest
  ``number`` runs first (the server negates it for "queue front"), ties run in arrival order;
* ``get()`` blocks, then marks the item running; ``task_done()`` moves it to the history;
* ``delete()`` and ``wipe()`` touch pending items only; the running one is stopped with an
  interrupt, never deleted.

Kiln additions: ``pause()``/``resume()``, ``move(prompt_id, "front"|"back")``, a persistent
``next_number()`` counter, change listeners (the server broadcasts ``status`` from them), and
crash recovery: on open, an item left ``running`` by a crash is re-queued or written to history
as failed, per ``on_interrupted``. API credentials in ``extra_data`` are kept in memory only,
never written to disk nor shown by ``pending()``/``running()``.

Table ``queue(prompt_id, number, seq, item, state)``: ``item`` is the 5-element JSON array,
``state`` is ``pending`` or ``running``; ``seq`` is the arrival order.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.history import SENSITIVE_EXTRA_DATA_KEYS, History, strip_sensitive, to_json

__all__ = ["PromptQueue", "QueueItem", "QueueListener", "SCHEMA_VERSION", "INTERRUPTED_MESSAGE"]

log = logging.getLogger(__name__)

QueueItem = tuple  # (number: float, prompt_id: str, prompt: dict, extra_data: dict, outputs: list[str])
QueueListener = Callable[[str], None]  # called with the change: "put", "get", "task_done", ...

SCHEMA_VERSION = 1
INTERRUPTED_MESSAGE = "Kiln stopped while this prompt was running (crash or restart); it did not finish."

_QUEUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    prompt_id TEXT PRIMARY KEY,
    number REAL NOT NULL,
    seq INTEGER NOT NULL,
    item TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running'))
)
"""
_COUNTER_SCHEMA = "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)"


@dataclass
class _Row:
    """One queued prompt as held in memory: the persisted item plus credentials kept aside."""

    number: float
    seq: int
    item_json: str
    secrets: dict[str, Any]

    def sort_key(self) -> tuple[float, int]:
        return (self.number, self.seq)

    def public_item(self) -> list:
        return json.loads(self.item_json)

    def worker_item(self) -> QueueItem:
        number, prompt_id, prompt, extra_data, outputs = json.loads(self.item_json)
        return (number, prompt_id, prompt, {**extra_data, **self.secrets}, outputs)


def _field(result: Any, name: str, default: Any) -> Any:
    if result is None:
        return default
    if isinstance(result, Mapping):
        return result.get(name, default)
    return getattr(result, name, default)


class PromptQueue:
    """Thread-safe durable queue; one owner (the server), used by the worker and the web loop."""

    def __init__(
        self,
        db_path: Path | str | None,
        on_interrupted: str = "requeue",
        *,
        max_history: int | None = None,
    ) -> None:
        if on_interrupted not in ("requeue", "fail"):
            raise ValueError(f"on_interrupted must be 'requeue' or 'fail', not {on_interrupted!r}")
        self._lock = threading.RLock()
        self._ready = threading.Condition(self._lock)
        self._listeners: list[QueueListener] = []
        self._pending: dict[str, _Row] = {}
        self._running: dict[str, _Row] = {}
        self._paused = False
        self._connection = self._connect(db_path)
        history_kwargs = {} if max_history is None else {"max_size": max_history}
        self.history = History(self._connection, self._lock, **history_kwargs)
        self._load(on_interrupted)

    # -- opening --------------------------------------------------------------------------

    @staticmethod
    def _connect(db_path: Path | str | None) -> sqlite3.Connection:
        if db_path is None:
            connection = sqlite3.connect(":memory:", check_same_thread=False)
        else:
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(str(db_path), check_same_thread=False, timeout=10)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"queue database {db_path} has schema {version}; this Kiln reads {SCHEMA_VERSION}")
        connection.execute(_QUEUE_SCHEMA)
        connection.execute(_COUNTER_SCHEMA)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return connection

    def _load(self, on_interrupted: str) -> None:
        rows = self._connection.execute("SELECT prompt_id, number, seq, item, state FROM queue").fetchall()
        interrupted = []
        for prompt_id, number, seq, item_json, state in rows:
            row = _Row(number, seq, item_json, {})
            if state == "running":
                interrupted.append((prompt_id, row))
            else:
                self._pending[prompt_id] = row
        with self._connection:
            for prompt_id, row in interrupted:
                if on_interrupted == "requeue":
                    log.warning("re-queueing prompt %s, which was running when Kiln stopped", prompt_id)
                    self._connection.execute("UPDATE queue SET state = 'pending' WHERE prompt_id = ?", (prompt_id,))
                    self._pending[prompt_id] = row
                else:
                    log.warning("marking prompt %s failed: it was running when Kiln stopped", prompt_id)
                    self._connection.execute("DELETE FROM queue WHERE prompt_id = ?", (prompt_id,))
                    self.history.write_entry(
                        row.public_item(), "error", False, [["execution_error", self._interrupted_error(prompt_id)]]
                    )

    @staticmethod
    def _interrupted_error(prompt_id: str) -> dict:
        return {
            "prompt_id": prompt_id, "node_id": None, "node_type": None, "executed": [],
            "exception_message": INTERRUPTED_MESSAGE, "exception_type": "ServerStopped",
            "traceback": [], "current_inputs": {}, "current_outputs": [],
            "timestamp": int(time.time() * 1000),
        }

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    # -- listeners ------------------------------------------------------------------------

    def add_listener(self, listener: QueueListener) -> None:
        """Call ``listener(change)`` after every change, outside the lock (may be any thread)."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: QueueListener) -> None:
        with self._lock:
            self._listeners.remove(listener)

    def _notify(self, change: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(change)
            except Exception:
                log.exception("queue listener failed on %r", change)

    # -- the queue ------------------------------------------------------------------------

    def next_number(self) -> int:
        """A persistent, increasing priority number for prompts that bring none (ComfyUI's counter).

        It continues after a restart and is never below a queued number, so new prompts run
        after the ones a previous run left pending.
        """
        with self._lock, self._connection:
            highest = max((row.number for row in self._pending.values()), default=-1)
            current = self._connection.execute("SELECT value FROM counters WHERE name = 'number'").fetchone()
            number = max(int(highest) + 1, current[0] + 1 if current else 0)
            self._connection.execute(
                "INSERT INTO counters(name, value) VALUES ('number', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (number,),
            )
            return number

    def put(self, item: QueueItem) -> None:
        """Enqueue ``(number, prompt_id, prompt, extra_data, outputs)``; durable on return."""
        number, prompt_id, prompt, extra_data, outputs = item[:5]
        prompt_id = str(prompt_id)
        extra_data = dict(extra_data or {})
        secrets = {key: extra_data[key] for key in SENSITIVE_EXTRA_DATA_KEYS if key in extra_data}
        item_json = to_json([number, prompt_id, prompt, strip_sensitive(extra_data), list(outputs)])
        with self._lock:
            if prompt_id in self._pending or prompt_id in self._running:
                raise ValueError(f"prompt {prompt_id} is already queued")
            seq = self._next_seq()
            with self._connection:
                self._connection.execute(
                    "INSERT INTO queue(prompt_id, number, seq, item, state) VALUES (?, ?, ?, ?, 'pending')",
                    (prompt_id, float(number), seq, item_json),
                )
            self._pending[prompt_id] = _Row(float(number), seq, item_json, secrets)
            self._ready.notify()
        self._notify("put")

    def get(self, timeout: float | None = None) -> QueueItem | None:
        """Wait for the lowest-numbered pending item (not while paused); mark it running."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._pending and not self._paused, timeout):
                return None
            prompt_id, row = min(self._pending.items(), key=lambda pair: pair[1].sort_key())
            with self._connection:
                self._connection.execute("UPDATE queue SET state = 'running' WHERE prompt_id = ?", (prompt_id,))
            del self._pending[prompt_id]
            self._running[prompt_id] = row
            item = row.worker_item()
        self._notify("get")
        return item

    def task_done(
        self,
        prompt_id: str,
        result: Any = None,
        *,
        status_str: str | None = None,
        completed: bool | None = None,
        messages: list | None = None,
        outputs: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Finish the running prompt and write its history entry in one transaction.

        ``result`` is the executor's ``ExecutionResult`` or a dict with the same fields
        (``status_str``, ``completed``, ``messages``, ``outputs``, ``meta``); keywords override it.
        """
        prompt_id = str(prompt_id)
        status_str = status_str if status_str is not None else _field(result, "status_str", "success")
        completed = completed if completed is not None else _field(result, "completed", status_str == "success")
        messages = messages if messages is not None else _field(result, "messages", [])
        outputs = outputs if outputs is not None else _field(result, "outputs", {})
        meta = meta if meta is not None else _field(result, "meta", {})
        with self._lock:
            row = self._running.get(prompt_id)
            if row is None:
                raise KeyError(f"prompt {prompt_id} is not running")
            with self._connection:
                self._connection.execute("DELETE FROM queue WHERE prompt_id = ?", (prompt_id,))
                self.history.write_entry(row.public_item(), status_str, completed, messages, outputs, meta)
            del self._running[prompt_id]
        self._notify("task_done")

    def running(self) -> list[list]:
        """The running items as ComfyUI 5-element lists (credentials left out)."""
        with self._lock:
            return [row.public_item() for row in self._running.values()]

    def pending(self) -> list[list]:
        """Pending items in the order they will run (ComfyUI returns heap order; sorted is a valid heap)."""
        with self._lock:
            rows = sorted(self._pending.values(), key=_Row.sort_key)
            return [row.public_item() for row in rows]

    def remaining(self) -> int:
        """Running plus pending, the ``queue_remaining`` of ``status`` events."""
        with self._lock:
            return len(self._running) + len(self._pending)

    def delete(self, prompt_ids: Iterable[str]) -> None:
        """Remove pending items by prompt id; the running item is left alone."""
        with self._lock:
            doomed = [str(prompt_id) for prompt_id in prompt_ids if str(prompt_id) in self._pending]
            if not doomed:
                return
            with self._connection:
                self._connection.executemany("DELETE FROM queue WHERE prompt_id = ?", [(pid,) for pid in doomed])
            for prompt_id in doomed:
                del self._pending[prompt_id]
        self._notify("delete")

    def wipe(self) -> None:
        """Remove every pending item (``POST /queue {"clear": true}``)."""
        with self._lock:
            with self._connection:
                self._connection.execute("DELETE FROM queue WHERE state = 'pending'")
            self._pending.clear()
        self._notify("wipe")

    def move(self, prompt_id: str, where: str) -> None:
        """Give a pending item the lowest (``front``) or highest (``back``) number in the queue."""
        if where not in ("front", "back"):
            raise ValueError(f"move where must be 'front' or 'back', not {where!r}")
        prompt_id = str(prompt_id)
        with self._lock:
            row = self._pending.get(prompt_id)
            if row is None:
                raise KeyError(f"prompt {prompt_id} is not pending")
            others = [other.number for pid, other in self._pending.items() if pid != prompt_id]
            if others:
                row.number = min(others) - 1 if where == "front" else max(others) + 1
            row.seq = self._next_seq() if where == "back" else -self._next_seq()
            item = row.public_item()
            item[0] = int(row.number) if float(row.number).is_integer() else row.number
            row.item_json = to_json(item)
            with self._connection:
                self._connection.execute(
                    "UPDATE queue SET number = ?, seq = ?, item = ? WHERE prompt_id = ?",
                    (row.number, row.seq, row.item_json, prompt_id),
                )
        self._notify("move")

    def pause(self) -> None:
        """Stop handing out prompts; the running one finishes."""
        with self._lock:
            self._paused = True
        self._notify("pause")

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            self._ready.notify_all()
        self._notify("resume")

    @property
    def paused(self) -> bool:
        return self._paused

    def _next_seq(self) -> int:
        row = self._connection.execute("SELECT coalesce(max(abs(seq)), 0) FROM queue").fetchone()
        return row[0] + 1
