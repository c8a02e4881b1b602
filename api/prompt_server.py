"""``from server import PromptServer``: the object ComfyUI plugins talk to.

Plugins use ``PromptServer.instance`` (comfy-compat §1.1, §14): ``.routes`` (a RouteTableDef
they add routes to at import time, before Kiln registers it), ``.send_sync(event, data,
sid)``, ``.add_on_prompt_handler(fn)``, ``.client_id``, ``.last_node_id``, ``.loop`` and
``.send_progress_text``. Kiln's server has no singleton of its own; this class is a thin
front over the websocket hub, and ``instance`` exists only because plugins expect it.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from typing import Any, ClassVar

from aiohttp import web

from api.hub import PREVIEW_IMAGE, UNENCODED_PREVIEW_IMAGE, WebSocketHub

log = logging.getLogger(__name__)


class BinaryEventTypes:
    """ComfyUI's ``protocol.BinaryEventTypes``."""

    PREVIEW_IMAGE = 1
    UNENCODED_PREVIEW_IMAGE = 2
    TEXT = 3
    PREVIEW_IMAGE_WITH_METADATA = 4


class PromptServer:
    """The plugin-facing server object; ``instance`` is the one the running server built."""

    instance: ClassVar["PromptServer | None"] = None

    def __init__(self, hub: WebSocketHub, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.hub = hub
        self.loop = loop
        self.routes = web.RouteTableDef()
        self.app: web.Application | None = None
        self.prompt_queue: Any = None
        self.on_prompt_handlers: list[Callable[[dict], dict]] = []
        self.supports = ["custom_nodes_from_web"]
        PromptServer.instance = self

    @property
    def client_id(self) -> str | None:
        """The client id of the running prompt (None when idle or when it had none)."""
        return self.hub.running.client_id

    @property
    def last_node_id(self) -> str | None:
        return self.hub.running.last_node_id

    @property
    def sockets(self) -> dict:
        return self.hub.sockets

    def send_sync(self, event: str | int, data: Any, sid: str | None = None) -> None:
        """Send from any thread: JSON for str events, binary frames for int events."""
        if event == UNENCODED_PREVIEW_IMAGE:
            self.hub.send_preview(data, {}, sid)
        elif isinstance(event, int):
            if event == PREVIEW_IMAGE and isinstance(data, tuple):
                image_type, payload = data  # ComfyUI sends ("JPEG"|"PNG", bytes) pairs here too
                code = 2 if str(image_type).upper() == "PNG" else 1
                self.hub.send_binary(struct.pack(">II", PREVIEW_IMAGE, code) + payload, sid)
            else:
                self.hub.send_binary(struct.pack(">I", event) + bytes(data), sid)
        else:
            self.hub.send_sync(event, data, sid)

    async def send(self, event: str | int, data: Any, sid: str | None = None) -> None:
        self.send_sync(event, data, sid)

    async def send_json(self, event: str, data: Any, sid: str | None = None) -> None:
        self.hub.send_sync(event, data, sid)

    def send_progress_text(self, text: str, node_id: str, sid: str | None = None) -> None:
        """Binary type 3 text shown on a node (``progress_text`` in the frontend)."""
        self.hub.send_text(str(node_id), str(text), self.hub.running.prompt_id,
                           sid if sid is not None else self.client_id)

    def add_on_prompt_handler(self, handler: Callable[[dict], dict]) -> None:
        self.on_prompt_handlers.append(handler)

    def trigger_on_prompt(self, json_data: dict) -> dict:
        """Run the plugins' prompt hooks; a failing hook is logged and skipped (as ComfyUI)."""
        for handler in self.on_prompt_handlers:
            try:
                result = handler(json_data)
                if isinstance(result, dict):
                    json_data = result
            except Exception:
                log.exception("on_prompt handler %r failed", handler)
        return json_data
