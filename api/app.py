"""The aiohttp application: middlewares, every route twice (bare and under ``/api``), statics.

Layout of ComfyUI's ``PromptServer.add_routes`` (comfy-compat §1.1): the ``/api`` copies are
registered first, plugin routes (``PromptServer.instance.routes``) are included, the
``/internal`` routes have no ``/api`` copy, and static files come last: ``/`` → index.html
(never cached), ``/extensions/<name>/`` → each plugin's ``WEB_DIRECTORY``, then ``web/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from aiohttp import web

from api import routes_files, routes_internal, routes_prompt, routes_system, routes_user, routes_ws
from api.auth import auth_middleware, login_routes
from api.middlewares import cache_control, cors_middleware, error_guard, origin_only
from api.state import STATE, ServerState

_PUBLISHER: web.AppKey[asyncio.Task] = web.AppKey("kiln_publisher", asyncio.Task)


def with_api_copies(tables: Iterable[web.RouteTableDef]) -> list[web.AbstractRouteDef]:
    """``/api``-prefixed copies of every plain route first, then every definition as is."""
    definitions = [definition for table in tables for definition in table]
    copies = [web.RouteDef(d.method, "/api" + d.path, d.handler, d.kwargs)
              for d in definitions if isinstance(d, web.RouteDef)]
    return copies + definitions


def create_app(state: ServerState, *, cors_origin: str | None = None) -> web.Application:
    """Build the application for ``state``; the hub starts publishing when the app starts."""
    middlewares = [cache_control, error_guard, cors_middleware(cors_origin) if cors_origin else origin_only]
    if state.auth_token:
        middlewares.append(auth_middleware(state.auth_token))
    app = web.Application(client_max_size=state.max_upload_bytes, middlewares=middlewares)
    app[STATE] = state
    state.prompt_server.app = app

    tables = [routes_prompt.routes, routes_files.routes, routes_user.routes, routes_system.routes,
              routes_ws.routes, routes_internal.routes, state.prompt_server.routes]
    if state.auth_token:
        tables.append(login_routes(state.auth_token))
    app.router.add_routes(with_api_copies(tables))
    app.router.add_get("/internal/folder_paths", routes_system.internal_folder_paths)
    app.router.add_get("/internal/files/{directory_type}", routes_files.internal_files)
    routes_internal.add_internal_routes(app)
    add_static_routes(app, state)
    app.on_startup.append(_start_publisher)
    app.on_cleanup.append(_stop_publisher)
    app.on_cleanup.append(_detach_log_buffer)
    return app


def add_static_routes(app: web.Application, state: ServerState) -> None:
    async def index(request: web.Request) -> web.StreamResponse:
        page = state.web_root / "index.html"
        if not page.is_file():
            raise web.HTTPNotFound(text="the Kiln editor (web/index.html) is not installed")
        return web.FileResponse(page, headers={"Cache-Control": "no-cache", "Pragma": "no-cache", "Expires": "0"})

    app.router.add_get("/", index)
    for name, folder in state.registry.web_directories.items():
        app.router.add_static(f"/extensions/{name}", folder, follow_symlinks=False)
    if state.web_root.is_dir():
        app.router.add_static("/", state.web_root, follow_symlinks=False)


async def _start_publisher(app: web.Application) -> None:
    state = app[STATE]
    state.logs.send = state.hub.send_sync
    if state.logs not in logging.getLogger().handlers:
        logging.getLogger().addHandler(state.logs)
    loop = asyncio.get_running_loop()
    state.hub.attach(loop)
    state.prompt_server.loop = loop
    app[_PUBLISHER] = loop.create_task(state.hub.publish_loop())


async def _detach_log_buffer(app: web.Application) -> None:
    logging.getLogger().removeHandler(app[STATE].logs)


async def _stop_publisher(app: web.Application) -> None:
    task = app[_PUBLISHER]
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    for socket in list(app[STATE].hub.sockets.values()):
        await socket.close()
