"""Prompt history kept in SQLite, with ComfyUI's entry shape and paging (comfy-compat §1.4).

An entry, keyed by prompt id and kept in insertion order (at most ``MAXIMUM_HISTORY_SIZE``,
oldest evicted first)::

    {"prompt": [number, prompt_id, prompt, extra_data, outputs_to_execute],
     "outputs": {node_id: ui_dict}, "status": {"status_str", "completed", "messages"},
     "meta": {node_id: {"node_id", "display_node", "parent_node", "real_node_id"}}}

Entries are stored as one JSON text each in table ``history(seq, prompt_id, entry)``; ``seq``
gives the insertion order, and rewriting an existing prompt id keeps its place, as a Python
dict assignment does in ComfyUI. The connection and lock are shared with
:class:`engine.queue.PromptQueue`, so finishing a prompt moves it from the queue table to this
one in a single transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "MAXIMUM_HISTORY_SIZE",
    "SENSITIVE_EXTRA_DATA_KEYS",
    "History",
    "HISTORY_SCHEMA",
    "strip_sensitive",
    "to_json",
]

MAXIMUM_HISTORY_SIZE = 10000
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")

HISTORY_SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt_id TEXT NOT NULL UNIQUE,
    entry TEXT NOT NULL
)
"""


def to_json(value: Any) -> str:
    """JSON text for the database; objects JSON cannot hold (plugin ui values) become strings."""
    return json.dumps(value, default=str, separators=(",", ":"))


def strip_sensitive(extra_data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``extra_data`` without the API credentials ComfyUI never writes to history."""
    return {key: value for key, value in extra_data.items() if key not in SENSITIVE_EXTRA_DATA_KEYS}


def _entry_item(item: Sequence[Any]) -> list[Any]:
    number, prompt_id, prompt, extra_data, outputs_to_execute = item[:5]
    return [number, prompt_id, prompt, strip_sensitive(extra_data or {}), list(outputs_to_execute)]


class History:
    """Finished prompts; reads and writes go straight to the shared SQLite connection."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        lock: threading.RLock,
        max_size: int = MAXIMUM_HISTORY_SIZE,
    ) -> None:
        self._connection = connection
        self._lock = lock
        self.max_size = max_size
        with self._lock:
            self._connection.execute(HISTORY_SCHEMA)

    # -- writing --------------------------------------------------------------------------

    def add(
        self,
        item: Sequence[Any],
        status_str: str,
        completed: bool,
        messages: list,
        outputs: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Write one entry in its own transaction (the queue uses :meth:`write_entry` in its own)."""
        with self._lock, self._connection:
            self.write_entry(item, status_str, completed, messages, outputs, meta)

    def write_entry(
        self,
        item: Sequence[Any],
        status_str: str,
        completed: bool,
        messages: list,
        outputs: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Insert or replace one entry inside the caller's transaction, then evict the oldest.

        The caller holds the shared lock and an open transaction on the shared connection.
        """
        entry = {
            "prompt": _entry_item(item),
            "outputs": dict(outputs or {}),
            "status": {"status_str": status_str, "completed": bool(completed), "messages": list(messages)},
            "meta": dict(meta or {}),
        }
        self._connection.execute(
            "INSERT INTO history(prompt_id, entry) VALUES (?, ?) "
            "ON CONFLICT(prompt_id) DO UPDATE SET entry = excluded.entry",
            (str(item[1]), to_json(entry)),
        )
        self._connection.execute(
            "DELETE FROM history WHERE seq IN (SELECT seq FROM history ORDER BY seq "
            "LIMIT max(0, (SELECT count(*) FROM history) - ?))",
            (self.max_size,),
        )

    # -- reading --------------------------------------------------------------------------

    def get(self, max_items: int | None = None, offset: int | None = None) -> dict[str, dict]:
        """ComfyUI paging: without an offset the last ``max_items``; else skip ``offset`` oldest."""
        with self._lock:
            if offset is None or offset < 0:
                offset = max(0, len(self) - max_items) if max_items is not None else 0
            limit = -1 if max_items is None else max(0, max_items)
            rows = self._connection.execute(
                "SELECT prompt_id, entry FROM history ORDER BY seq LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()
        return {prompt_id: json.loads(entry) for prompt_id, entry in rows}

    def get_one(self, prompt_id: str) -> dict[str, dict]:
        """``{prompt_id: entry}``, or ``{}`` for an unknown id (``GET /history/{id}``)."""
        with self._lock:
            row = self._connection.execute(
                "SELECT entry FROM history WHERE prompt_id = ?", (str(prompt_id),)
            ).fetchone()
        return {str(prompt_id): json.loads(row[0])} if row else {}

    def prompt_ids(self) -> list[str]:
        with self._lock:
            rows = self._connection.execute("SELECT prompt_id FROM history ORDER BY seq").fetchall()
        return [row[0] for row in rows]

    def __len__(self) -> int:
        with self._lock:
            return self._connection.execute("SELECT count(*) FROM history").fetchone()[0]

    def __contains__(self, prompt_id: object) -> bool:
        return bool(self.get_one(str(prompt_id)))

    # -- removing -------------------------------------------------------------------------

    def delete(self, prompt_ids: Iterable[str]) -> None:
        ids = [(str(prompt_id),) for prompt_id in prompt_ids]
        with self._lock, self._connection:
            self._connection.executemany("DELETE FROM history WHERE prompt_id = ?", ids)

    def wipe(self) -> None:
        with self._lock, self._connection:
            self._connection.execute("DELETE FROM history")
