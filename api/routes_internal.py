"""``/internal/logs*`` (no ``/api`` copy) and the ``/experiment/models*`` browser routes.

Shapes follow comfy-compat §1.2: the log routes of ComfyUI's ``/internal`` sub-app and the
model browser of ``app/model_manager.py`` that the stock frontend's model library calls.
"""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

from aiohttp import web
from PIL import Image

from api.state import read_json, state_of
from engine.safepath import UnsafePath, resolve_inside

routes = web.RouteTableDef()
PREVIEW_SUFFIXES = (".webp", ".preview.webp", ".png", ".preview.png", ".jpg", ".jpeg", ".preview.jpeg")


async def internal_logs(request: web.Request) -> web.Response:
    """All kept log lines joined into one string (a JSON string, as ComfyUI answers)."""
    return web.json_response(state_of(request).logs.text())


async def internal_logs_raw(request: web.Request) -> web.Response:
    logs = state_of(request).logs
    return web.json_response({"entries": logs.entries(), "size": logs.size()})


async def internal_logs_subscribe(request: web.Request) -> web.Response:
    """``{"clientId": str, "enabled": bool}``: stream new lines to that socket as ``logs`` events."""
    body = await read_json(request)
    client_id = body.get("clientId")
    if not isinstance(client_id, str) or not client_id:
        raise web.HTTPBadRequest(text="clientId (a string) is required")
    state_of(request).logs.subscribe(client_id, bool(body.get("enabled", False)))
    return web.Response(status=200)


def add_internal_routes(app: web.Application) -> None:
    app.router.add_get("/internal/logs", internal_logs)
    app.router.add_get("/internal/logs/raw", internal_logs_raw)
    app.router.add_patch("/internal/logs/subscribe", internal_logs_subscribe)


def _folder_paths(request: web.Request, folder: str) -> list[Path]:
    try:
        return state_of(request).folders.paths(folder)
    except KeyError:
        raise web.HTTPNotFound(text=f"unknown model folder {folder!r}") from None


@routes.get("/experiment/models")
async def model_folders(request: web.Request) -> web.Response:
    folders = state_of(request).folders
    return web.json_response([{"name": key, "folders": [str(path) for path in folders.paths(key)]}
                              for key in folders.folder_keys()])


def _models_in(folder_key: str, roots: list[Path], extensions: frozenset[str]) -> list[dict]:
    found = []
    for index, root in enumerate(roots):
        if not root.is_dir():
            continue
        for directory, subdirs, files in os.walk(root, followlinks=True):
            subdirs[:] = sorted(d for d in subdirs if d != ".git")
            for name in sorted(files):
                if extensions and not name.lower().endswith(tuple(extensions)):
                    continue
                path = Path(directory) / name
                stat = path.stat()
                found.append({"name": path.relative_to(root).as_posix(), "pathIndex": index,
                              "modified": stat.st_mtime, "size": stat.st_size})
    return found


@routes.get("/experiment/models/{folder}")
async def models_of_folder(request: web.Request) -> web.Response:
    folder = request.match_info["folder"]
    roots = _folder_paths(request, folder)
    extensions = frozenset(state_of(request).folders.extensions(folder))
    return web.json_response(await asyncio.to_thread(_models_in, folder, roots, extensions))


def _preview_of(model: Path) -> bytes | None:
    """The model's preview image (``<stem>.webp``, ``.png``, ...) re-encoded as WebP."""
    stem = model.with_suffix("")
    for suffix in PREVIEW_SUFFIXES:
        candidate = stem.with_name(stem.name + suffix)
        if candidate.is_file():
            with Image.open(candidate) as image:
                buffer = io.BytesIO()
                image.save(buffer, format="WEBP")
                return buffer.getvalue()
    return None


@routes.get("/experiment/models/preview/{folder}/{path_index}/{filename:.+}")
async def model_preview(request: web.Request) -> web.Response:
    roots = _folder_paths(request, request.match_info["folder"])
    try:
        root = roots[int(request.match_info["path_index"])]
        model = resolve_inside(root, request.match_info["filename"])
    except (ValueError, IndexError, UnsafePath):
        raise web.HTTPBadRequest(text="bad path index or file name") from None
    preview = await asyncio.to_thread(_preview_of, model) if model.is_file() else None
    if preview is None:
        raise web.HTTPNotFound(text="no preview image for this model")
    return web.Response(body=preview, content_type="image/webp")
