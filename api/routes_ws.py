"""``/ws``: the websocket endpoint (comfy-compat §2).

On connect: ``status`` with the ``sid``; a client that owns the running prompt also gets
``executing`` with the current node. The first text message may negotiate
``feature_flags``; later client messages are ignored.
"""

from __future__ import annotations

import json
import logging
import uuid

from aiohttp import WSMsgType, web

from api.routes_system import server_features
from api.state import state_of

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


@routes.get("/ws")
async def websocket(request: web.Request) -> web.WebSocketResponse:
    state = state_of(request)
    hub = state.hub
    socket = web.WebSocketResponse(heartbeat=30.0)
    await socket.prepare(request)
    sid = request.query.get("clientId") or uuid.uuid4().hex
    previous = hub.add_socket(sid, socket)
    if previous is not None:
        await previous.close()  # reconnecting with the same id replaces the old socket
    try:
        await socket.send_str(json.dumps({"type": "status", "data": {**state.status_data(), "sid": sid}}))
        running = hub.running
        if running.client_id == sid and running.last_node_id is not None:
            await socket.send_str(json.dumps({"type": "executing", "data": {"node": running.last_node_id}}))
        first_message = True
        async for message in socket:
            if message.type == WSMsgType.TEXT and first_message:
                await _negotiate(state, sid, socket, message.data)
            elif message.type == WSMsgType.ERROR:
                log.debug("websocket %s error: %s", sid, socket.exception())
            first_message = False
    finally:
        hub.remove_socket(sid, socket)
    return socket


async def _negotiate(state, sid: str, socket: web.WebSocketResponse, text: str) -> None:
    """Store the client's feature flags and answer with the server's."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        return
    if isinstance(message, dict) and message.get("type") == "feature_flags" and isinstance(message.get("data"), dict):
        state.hub.client_flags[sid] = message["data"]
        await socket.send_str(json.dumps({"type": "feature_flags", "data": server_features(state)}))
