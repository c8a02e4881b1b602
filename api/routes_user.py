"""Per-user storage: ``/users``, ``/userdata``, ``/v2/userdata`` and ``/settings``.

The routes of ComfyUI's ``app/user_manager.py`` and ``app/app_settings.py`` that the stock
frontend calls (comfy-compat §1.2). Kiln is single-user: files live in ``user/default/``;
settings in ``user/default/comfy.settings.json``. ``{file}`` arrives URL-encoded
(``workflows%2Fmy.json``) and is checked by ``engine.safepath.resolve_inside``.
``modified``/``created`` are epoch milliseconds, as in current ComfyUI.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from aiohttp import web

from api.state import read_json, state_of
from engine.safepath import UnsafePath, resolve_inside

routes = web.RouteTableDef()

SETTINGS_FILE = "comfy.settings.json"


def _flag(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    return default if raw is None else raw.lower() in ("true", "1", "yes")


def _root(request: web.Request) -> Path:
    root = state_of(request).user_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _inside(request: web.Request, relative: str) -> Path:
    try:
        return resolve_inside(_root(request), relative)
    except UnsafePath as exc:
        raise web.HTTPForbidden(text=str(exc)) from None


def file_info(path: Path, root: Path) -> dict:
    stat = path.stat()
    return {"path": path.relative_to(root).as_posix(), "size": stat.st_size,
            "modified": int(stat.st_mtime * 1000), "created": int(stat.st_ctime * 1000)}


@routes.get("/users")
async def get_users(request: web.Request) -> web.Response:
    root = state_of(request).user_root()
    return web.json_response({"storage": "server", "migrated": root.is_dir()})


@routes.post("/users")
async def post_users(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body.get("username"), str) or not body["username"].strip():
        raise web.HTTPBadRequest(text="'username' is required")
    raise web.HTTPBadRequest(text="Kiln runs in single-user mode; every client is the 'default' user")


@routes.get("/userdata")
async def list_userdata(request: web.Request) -> web.Response:
    directory = request.query.get("dir", "")
    if not directory:
        raise web.HTTPBadRequest(text="Directory not provided")
    root = _root(request)
    folder = _inside(request, directory)
    if not folder.is_dir():
        raise web.HTTPNotFound(text="Directory not found")
    pattern = "**/*" if _flag(request, "recurse", False) else "*"
    files = sorted((p for p in folder.glob(pattern) if p.is_file()), key=lambda p: p.relative_to(folder).as_posix())
    if _flag(request, "full_info", False):
        result: list = [{**file_info(p, root), "path": p.relative_to(folder).as_posix()} for p in files]
    else:
        result = [p.relative_to(folder).as_posix() for p in files]
        if _flag(request, "split", False):
            result = [[name, *name.split("/")] for name in result]
    return web.json_response(result)


@routes.get("/v2/userdata")
async def list_userdata_v2(request: web.Request) -> web.Response:
    """Direct children of ``path`` with their type: ``[{name, path, type, size?, modified}]``."""
    root = _root(request)
    folder = _inside(request, request.query.get("path", ""))
    if not folder.exists():
        raise web.HTTPNotFound(text="Path not found")
    if not folder.is_dir():
        raise web.HTTPBadRequest(text="Path is not a directory")
    entries = []
    for child in sorted(folder.iterdir(), key=lambda p: p.name):
        entry = {"name": child.name, "path": child.relative_to(root).as_posix(),
                 "type": "directory" if child.is_dir() else "file",
                 "modified": int(child.stat().st_mtime * 1000)}
        if child.is_file():
            entry["size"] = child.stat().st_size
        entries.append(entry)
    return web.json_response(entries)


def _user_file(request: web.Request, key: str = "file") -> Path:
    relative = request.match_info[key]
    if not relative:
        raise web.HTTPBadRequest(text="file name required")
    return _inside(request, relative)


@routes.get("/userdata/{file}")
async def get_userdata(request: web.Request) -> web.StreamResponse:
    path = _user_file(request)
    if not path.is_file():
        raise web.HTTPNotFound(text="File not found")
    return web.FileResponse(path)


@routes.post("/userdata/{file}")
async def post_userdata(request: web.Request) -> web.Response:
    path = _user_file(request)
    if path.exists() and not _flag(request, "overwrite", True):
        raise web.HTTPConflict(text="File already exists")
    if path.is_dir():
        raise web.HTTPBadRequest(text="a directory has that name")
    body = await request.read()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    root = _root(request)
    if _flag(request, "full_info", False):
        return web.json_response(file_info(path, root))
    return web.json_response(path.relative_to(root).as_posix())


@routes.delete("/userdata/{file}")
async def delete_userdata(request: web.Request) -> web.Response:
    path = _user_file(request)
    if not path.is_file():
        raise web.HTTPNotFound(text="File not found")
    path.unlink()
    return web.Response(status=204)


@routes.post("/userdata/{file}/move/{dest}")
async def move_userdata(request: web.Request) -> web.Response:
    source, target = _user_file(request), _user_file(request, "dest")
    if not source.is_file():
        raise web.HTTPNotFound(text="Source file not found")
    if target.exists() and not _flag(request, "overwrite", True):
        raise web.HTTPConflict(text="Destination file already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(os.fspath(source), os.fspath(target))
    root = _root(request)
    if _flag(request, "full_info", False):
        return web.json_response(file_info(target, root))
    return web.json_response(target.relative_to(root).as_posix())


def load_settings(root: Path) -> dict:
    path = root / SETTINGS_FILE
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return settings if isinstance(settings, dict) else {}


def save_settings(root: Path, settings: dict) -> None:
    """Write through a temporary file so a crash never leaves half a settings file."""
    temporary = root / (SETTINGS_FILE + ".tmp")
    temporary.write_text(json.dumps(settings, indent=4), encoding="utf-8")
    os.replace(temporary, root / SETTINGS_FILE)


@routes.get("/settings")
async def get_settings(request: web.Request) -> web.Response:
    return web.json_response(load_settings(_root(request)))


@routes.get("/settings/{id}")
async def get_setting(request: web.Request) -> web.Response:
    return web.json_response(load_settings(_root(request)).get(request.match_info["id"]))


@routes.post("/settings")
async def post_settings(request: web.Request) -> web.Response:
    changes = await read_json(request)
    root = _root(request)
    save_settings(root, {**load_settings(root), **changes})
    return web.Response()


@routes.post("/settings/{id}")
async def post_setting(request: web.Request) -> web.Response:
    value = await read_json(request, kind=object)
    root = _root(request)
    settings = load_settings(root)
    settings[request.match_info["id"]] = value
    save_settings(root, settings)
    return web.Response()
