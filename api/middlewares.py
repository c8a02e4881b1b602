"""HTTP middlewares: cache headers, CSRF origin check or CORS, and the bad-input guard.

Behaviour of ComfyUI's middlewares (comfy-compat §1.1): ``cache_control`` first, then either
the CORS middleware (``--enable-cors-header``) or the origin-only check that refuses a
browser request whose ``Origin`` differs from a loopback ``Host`` (DNS-rebinding / CSRF
guard). Kiln adds ``error_guard`` so that malformed input always gets a 4xx with a message.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def cache_header_for(path: str, status: int) -> str | None:
    """The ``Cache-Control`` value ComfyUI's ``cache_control`` middleware sets, or None."""
    lower = path.lower()
    if lower.endswith((".js", ".css")) or (lower.rsplit("/", 1)[-1].startswith("index") and lower.endswith(".json")):
        return "no-cache"
    if lower.endswith(_IMAGE_SUFFIXES):
        if status in (200, 201, 202, 203, 204, 206, 301, 308):
            return "public, max-age=86400"
        if status == 404:
            return "public, max-age=3600"
        if status in (302, 303, 307):
            return "no-cache"
    return None


@web.middleware
async def cache_control(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        value = cache_header_for(request.path, exc.status)
        if value is not None:
            exc.headers.setdefault("Cache-Control", value)
        raise
    value = cache_header_for(request.path, response.status)
    if value is not None and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = value
    return response


@web.middleware
async def error_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn input errors that escaped a handler into 400s instead of 500s."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return web.json_response({"error": f"invalid JSON body: {exc}"}, status=400)
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("bad request to %s: %r", request.path, exc, exc_info=True)
        return web.json_response({"error": f"bad request: {exc}"}, status=400)


def _split_host_port(netloc: str) -> tuple[str, str | None]:
    """``"[::1]:8188"`` → ``("::1", "8188")``; ``"localhost"`` → ``("localhost", None)``."""
    parts = urlsplit("//" + netloc)
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.hostname or ""), (None if port is None else str(port))


def is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def origin_mismatch(host_header: str | None, origin_header: str | None) -> bool:
    """True when a loopback ``Host`` and the request's ``Origin`` name different servers.

    Only acts when both headers are present and the host is loopback; a side without a
    port is compared without the other side's port too.
    """
    if not host_header or not origin_header:
        return False
    host_name, host_port = _split_host_port(host_header)
    if not is_loopback(host_name):
        return False
    origin_netloc = urlsplit(origin_header).netloc
    if not origin_netloc:
        return True
    origin_name, origin_port = _split_host_port(origin_netloc)
    if host_port is None or origin_port is None:
        host_port = origin_port = None
    return (host_name.lower(), host_port) != (origin_name.lower(), origin_port)


@web.middleware
async def origin_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "OPTIONS":
        return web.Response()
    if origin_mismatch(request.headers.get("Host"), request.headers.get("Origin")):
        log.warning("refused cross-origin request %s %s from %s", request.method, request.path,
                    request.headers.get("Origin"))
        return web.Response(status=403)
    return await handler(request)


def cors_middleware(allowed_origin: str) -> Callable:
    """CORS headers for ``allowed_origin`` (``*`` allows any); preflight gets an empty 200."""

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response()
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = exc
                _add_cors_headers(response, allowed_origin)
                raise
        _add_cors_headers(response, allowed_origin)
        return response

    return cors


def _add_cors_headers(response: web.StreamResponse, origin: str) -> None:
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Methods"] = "POST, GET, DELETE, PUT, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
    response.headers["Access-Control-Allow-Credentials"] = "true"
