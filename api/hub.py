"""The websocket hub: every socket by client id, and a thread-safe way to reach them.

Protocol: comfy-compat §2. JSON frames are ``{"type": event, "data": {...}}``; binary frames
are ``u32 event_type || payload`` big-endian (§2.2). The worker thread never touches a socket:
``send_sync`` hands the message to the event loop with ``loop.call_soon_threadsafe`` onto an
``asyncio.Queue`` that ``publish_loop`` drains, as ComfyUI's ``PromptServer`` does.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

PREVIEW_IMAGE = 1
UNENCODED_PREVIEW_IMAGE = 2
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4

_IMAGE_TYPE_CODES = {"JPEG": 1, "PNG": 2}
_IMAGE_MIME = {"JPEG": "image/jpeg", "PNG": "image/png"}


def encode_preview(preview: tuple) -> tuple[str, bytes]:
    """Shrink a ``(format, PIL image, max_size)`` preview to fit and encode it.

    As ComfyUI: ``ImageOps.contain`` with bilinear resampling, JPEG quality 95 or PNG
    compress level 1. Returns ``(format, bytes)``.
    """
    from PIL import Image, ImageOps

    image_format, image, max_size = preview
    image_format = "PNG" if str(image_format).upper() == "PNG" else "JPEG"
    if max_size is not None:
        image = ImageOps.contain(image, (int(max_size), int(max_size)), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    if image_format == "JPEG":
        image.convert("RGB").save(buffer, format="JPEG", quality=95)
    else:
        image.save(buffer, format="PNG", compress_level=1)
    return image_format, buffer.getvalue()


def preview_frames(image_format: str, data: bytes, meta: dict) -> tuple[bytes, bytes]:
    """The two binary frames for one preview: plain (type 1) and with metadata (type 4)."""
    plain = struct.pack(">II", PREVIEW_IMAGE, _IMAGE_TYPE_CODES[image_format]) + data
    header = json.dumps({**meta, "image_type": _IMAGE_MIME[image_format]}).encode()
    with_meta = struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(header)) + header + data
    return plain, with_meta


def text_frame(node_id: str, text: str, prompt_id: str | None = None) -> bytes:
    """Binary type 3 (``progress_text``), optionally with the newer prompt-id prefix."""
    payload = b""
    if prompt_id is not None:
        encoded_prompt = prompt_id.encode()
        payload += struct.pack(">I", len(encoded_prompt)) + encoded_prompt
    encoded_node = node_id.encode()
    payload += struct.pack(">I", len(encoded_node)) + encoded_node + text.encode()
    return struct.pack(">I", TEXT) + payload


@dataclass
class _Preview:
    plain: bytes
    with_meta: bytes


@dataclass
class _Text:
    node_id: str
    text: str
    prompt_id: str | None


@dataclass
class RunningState:
    """What a reconnecting client needs: who owns the running prompt and its current node."""

    client_id: str | None = None
    prompt_id: str | None = None
    last_node_id: str | None = None


@dataclass
class WebSocketHub:
    """Owner of the sockets; created by the server, written to from any thread."""

    server_flags: dict = field(default_factory=dict)
    sockets: dict[str, web.WebSocketResponse] = field(default_factory=dict)
    client_flags: dict[str, dict] = field(default_factory=dict)
    running: RunningState = field(default_factory=RunningState)
    loop: asyncio.AbstractEventLoop | None = None
    _messages: asyncio.Queue | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the server's loop; must run on that loop's thread."""
        self.loop = loop
        self._messages = asyncio.Queue()

    # ---- sending, from any thread -------------------------------------------------------
    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        """Queue a JSON event (``sid=None`` = every socket). Without a loop, it is dropped."""
        self._enqueue(("json", event, data, sid))

    def send_preview(self, preview: tuple, meta: dict, sid: str | None = None) -> None:
        """Encode (in the calling thread) and queue a latent preview for ``sid``."""
        if self.loop is None:
            return
        image_format, data = encode_preview(preview)
        plain, with_meta = preview_frames(image_format, data, meta)
        self._enqueue(("preview", _Preview(plain, with_meta), None, sid))

    def send_binary(self, frame: bytes, sid: str | None = None) -> None:
        self._enqueue(("ready", frame, None, sid))

    def send_text(self, node_id: str, text: str, prompt_id: str | None, sid: str | None = None) -> None:
        self._enqueue(("text", _Text(node_id, text, prompt_id), None, sid))

    def _enqueue(self, message: tuple) -> None:
        loop, queue = self.loop, self._messages
        if loop is None or queue is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(queue.put_nowait, message)
        except RuntimeError:  # the loop closed between the check and the call (shutdown)
            pass

    # ---- the loop side --------------------------------------------------------------------
    async def publish_loop(self) -> None:
        """Deliver queued messages forever (a task on the server loop)."""
        assert self._messages is not None
        while True:
            kind, payload, data, sid = await self._messages.get()
            try:
                await self._deliver(kind, payload, data, sid)
            except Exception:
                log.exception("websocket delivery of %s failed", kind)

    async def _deliver(self, kind: str, payload: Any, data: Any, sid: str | None) -> None:
        targets = list(self.sockets.items()) if sid is None else (
            [(sid, self.sockets[sid])] if sid in self.sockets else [])
        if not targets:  # nobody listens: skip the encoding (it blocks the loop on big events)
            return
        if kind == "json":  # the same text for every target: encode once
            kind, payload = "ready", json.dumps({"type": payload, "data": data})
        for target_sid, socket in targets:
            frame = self._frame_for(kind, payload, target_sid)
            try:
                if isinstance(frame, bytes):
                    await socket.send_bytes(frame)
                else:
                    await socket.send_str(frame)
            except (ConnectionError, RuntimeError):
                log.debug("socket %s went away while sending", target_sid)

    def _frame_for(self, kind: str, payload: Any, sid: str) -> str | bytes:
        """The frame for one socket: previews and texts depend on its feature flags."""
        flags = self.client_flags.get(sid, {})
        if kind == "preview":
            return payload.with_meta if flags.get("supports_preview_metadata") else payload.plain
        if kind == "text":
            prompt_id = payload.prompt_id if flags.get("supports_progress_text_metadata") else None
            return text_frame(payload.node_id, payload.text, prompt_id)
        return payload  # ready-made: a JSON text or a binary frame

    def add_socket(self, sid: str, socket: web.WebSocketResponse) -> web.WebSocketResponse | None:
        """Register ``socket`` for ``sid``; returns the socket it replaces, if any."""
        with self._lock:
            previous = self.sockets.get(sid)
            self.sockets[sid] = socket
            self.client_flags.pop(sid, None)
        return previous

    def remove_socket(self, sid: str, socket: web.WebSocketResponse) -> None:
        with self._lock:
            if self.sockets.get(sid) is socket:
                del self.sockets[sid]
                self.client_flags.pop(sid, None)
