"""What every route handler reaches: the server's parts, in one object stored on the app."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from api.hub import WebSocketHub
from api.log_buffer import LogBuffer
from api.resources import call_with_resources
from api.prompt_server import PromptServer


@dataclass
class ServerState:
    """The running server's objects (built by ``server.py``); one per app."""

    folders: Any                       # engine.folders.ModelFolders
    registry: Any                      # engine.registry.NodeRegistry
    queue: Any                         # engine.queue.PromptQueue
    hub: WebSocketHub
    prompt_server: PromptServer
    interrupt: Any                     # engine.context.InterruptFlag
    resources: Mapping[str, Any]
    options: dict[str, Any]
    web_root: Path
    worker: Any = None                 # api.worker.PromptWorker
    logs: LogBuffer = field(default_factory=LogBuffer)  # recent log lines for /internal/logs
    auth_token: str | None = None
    max_upload_bytes: int = 100 * 1024 * 1024

    def status_data(self) -> dict:
        return {"status": {"exec_info": {"queue_remaining": self.queue.remaining()}}}

    def broadcast_status(self, change: str = "") -> None:
        """Send the queue status to every socket; a ``PromptQueue`` listener (any thread)."""
        self.hub.send_sync("status", self.status_data(), None)

    async def node_code(self, function: Any, *args: Any) -> Any:
        """Run blocking node-facing code (``INPUT_TYPES`` calls) in a thread, inside a
        server ``NodeContext`` so nodes can reach the folders."""
        return await asyncio.to_thread(call_with_resources, self.resources, self.interrupt, function, *args)

    def user_root(self) -> Path:
        """Per-user storage (single user: ``user/default``)."""
        return Path(self.folders.user_dir) / "default"


STATE: web.AppKey[ServerState] = web.AppKey("kiln_state", ServerState)


def state_of(request: web.Request) -> ServerState:
    return request.app[STATE]


async def read_json(request: web.Request, *, default: Any = ..., kind: type | tuple = dict) -> Any:
    """The request's JSON body, or a 400 naming what is wrong with it.

    ``default`` is returned for an empty body when given.
    """
    raw = await request.read()
    if not raw.strip():
        if default is not ...:
            return default
        raise web.HTTPBadRequest(text="request body is empty, expected JSON")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise web.HTTPBadRequest(text=f"invalid JSON body: {exc}") from None
    except RecursionError:  # the stdlib parser recurses once per nesting level
        raise web.HTTPBadRequest(text="invalid JSON body: nested too deeply") from None
    if not isinstance(value, kind):
        raise web.HTTPBadRequest(text=f"expected a JSON {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value
