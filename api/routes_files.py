"""Files over HTTP: ``/view``, ``/upload/image``, ``/upload/mask``, ``/view_metadata``,
``/internal/files``.

Rules of comfy-compat §1.5–§1.6; every user-supplied name goes through
``engine.safepath.resolve_inside`` before touching the disk. Kiln answers every bad
upload with 400 and a message (ComfyUI sometimes gives an empty 400 or a 500).
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
from pathlib import Path

from aiohttp import web
from multidict import MultiDictProxy

from api import images
from api.state import ServerState, state_of
from engine.safepath import UnsafePath, resolve_inside

routes = web.RouteTableDef()

_ANNOTATIONS = {" [output]": "output", " [input]": "input", " [temp]": "temp"}
_FORCED_DOWNLOAD = frozenset({"text/html", "text/html-sandboxed", "application/xhtml+xml",
                              "text/javascript", "text/css",
                              # Kiln adds the other types a browser runs script from.
                              "application/javascript", "application/x-javascript", "application/ecmascript",
                              "text/ecmascript", "application/xml", "text/xml", "application/xslt+xml"})
# SVG stays displayable in <img> (where it never runs script) but is sandboxed when opened directly.
_SANDBOXED = frozenset({"image/svg+xml"})
_SANDBOX_POLICY = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def split_annotation(name: str) -> tuple[str, str | None]:
    """``"a.png [output]"`` → ``("a.png", "output")``."""
    for suffix, kind in _ANNOTATIONS.items():
        if name.endswith(suffix):
            return name[: -len(suffix)], kind
    return name, None


def content_type_for(name: str) -> str:
    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return "application/octet-stream" if guessed in _FORCED_DOWNLOAD else guessed


def _disposition(name: str) -> dict[str, str]:
    """Headers of every /view answer: the file name, and no content sniffing by the browser."""
    safe_name = name.replace('"', "")
    return {"Content-Disposition": f'filename="{safe_name}"', "X-Content-Type-Options": "nosniff"}


@routes.get("/view")
async def view(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    query = request.query
    filename, annotated_type = split_annotation(query.get("filename", ""))
    kind = annotated_type or query.get("type", "output")
    base = state.folders.directory_for_type(kind)
    if not filename or base is None or filename.startswith("/") or ".." in filename:
        raise web.HTTPBadRequest(text="bad filename or type")
    name = Path(filename).name
    try:
        folder = resolve_inside(base, query.get("subfolder", ""))
        path = resolve_inside(base, query.get("subfolder", ""), name)
    except UnsafePath as exc:
        raise web.HTTPForbidden(text=str(exc)) from None
    if not path.is_file() or not folder.is_dir():
        raise web.HTTPNotFound(text=f"{filename} not found")
    channel = query.get("channel", "rgba")
    if "preview" in query:
        image_format, quality = images.parse_preview(query["preview"], query.get("channel", ""))
        body = await _image_work(images.preview_bytes, path, image_format, quality, channel)
        return web.Response(body=body, content_type=f"image/{image_format}", headers=_disposition(name))
    if channel in ("rgb", "a"):
        body = await _image_work(images.channel_png, path, channel)
        return web.Response(body=body, content_type="image/png", headers=_disposition(name))
    content_type = content_type_for(name)
    headers = {**_disposition(name), "Content-Type": content_type}
    if content_type in _SANDBOXED:
        headers["Content-Security-Policy"] = _SANDBOX_POLICY
    return web.FileResponse(path, headers=headers)


async def _image_work(function, *args) -> bytes:
    try:
        return await asyncio.to_thread(function, *args)
    except (OSError, ValueError, SyntaxError) as exc:
        raise web.HTTPBadRequest(text=f"cannot convert image: {exc}") from None


def _upload_target(state: ServerState, post: MultiDictProxy) -> tuple[str, Path, str, str, bytes, bool]:
    """Check the multipart fields; returns (type, folder, subfolder, filename, data, overwrite)."""
    image = post.get("image")
    if not isinstance(image, web.FileField) or not image.filename:
        raise web.HTTPBadRequest(text="multipart field 'image' with a file name is required")
    kind = str(post.get("type") or "input")
    base = state.folders.directory_for_type(kind)
    if base is None:
        raise web.HTTPBadRequest(text=f"unknown upload type {kind!r}")
    subfolder = str(post.get("subfolder") or "")
    try:
        target = resolve_inside(base, subfolder, image.filename)
    except UnsafePath as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    overwrite = str(post.get("overwrite", "")).lower() in ("true", "1")
    return kind, target.parent, subfolder, target.name, image.file.read(), overwrite


def _store_upload(folder: Path, filename: str, data: bytes, overwrite: bool) -> str:
    """Write an upload (deduplicated by content); an OS refusal is the client's 400, not a 500."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        name, needs_write = images.choose_upload_name(folder, filename, data, overwrite)
        if needs_write:
            (folder / name).write_bytes(data)
    except OSError as exc:  # e.g. ENAMETOOLONG once a " (n)" suffix is added, or a file where a folder should be
        raise web.HTTPBadRequest(text=f"cannot store upload {filename!r}: {exc.strerror or exc}") from None
    return name


async def _post(request: web.Request) -> MultiDictProxy:
    if not request.content_type.startswith("multipart/"):
        raise web.HTTPBadRequest(text="expected a multipart/form-data body")
    try:
        return await request.post()
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"malformed multipart body: {exc}") from None


@routes.post("/upload/image")
async def upload_image(request: web.Request) -> web.Response:
    state = state_of(request)
    kind, folder, subfolder, filename, data, overwrite = _upload_target(state, await _post(request))
    try:
        await asyncio.to_thread(images.check_image, data)
    except images.BadImage as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    name = await asyncio.to_thread(_store_upload, folder, filename, data, overwrite)
    return web.json_response({"name": name, "subfolder": subfolder, "type": kind})


def _original_of(state: ServerState, raw: object) -> Path:
    """The image that ``original_ref`` (JSON ``{"filename","subfolder","type"}``) names."""
    try:
        ref = json.loads(str(raw))
        filename, annotated_type = split_annotation(str(ref["filename"]))
        base = state.folders.directory_for_type(annotated_type or ref.get("type", "output"))
        if base is None:
            raise ValueError("unknown type")
        path = resolve_inside(base, str(ref.get("subfolder", "")), filename)
    except (ValueError, KeyError, TypeError, UnsafePath, RecursionError) as exc:
        raise web.HTTPBadRequest(text=f"bad original_ref: {exc}") from None
    if not path.is_file():
        raise web.HTTPBadRequest(text="original_ref names no existing image")
    return path


@routes.post("/upload/mask")
async def upload_mask(request: web.Request) -> web.Response:
    state = state_of(request)
    post = await _post(request)
    kind, folder, subfolder, filename, data, overwrite = _upload_target(state, post)
    original = _original_of(state, post.get("original_ref"))
    try:
        await asyncio.to_thread(images.check_image, data)
        composed = await asyncio.to_thread(images.compose_mask, original, data)
    except (images.BadImage, OSError, ValueError) as exc:
        raise web.HTTPBadRequest(text=f"cannot apply mask: {exc}") from None
    name = await asyncio.to_thread(_store_upload, folder, filename, composed, overwrite)
    return web.json_response({"name": name, "subfolder": subfolder, "type": kind})


def read_safetensors_metadata(path: Path, max_header_bytes: int = 100 * 1024 * 1024) -> dict | None:
    """The ``__metadata__`` of a .safetensors file: u64 little-endian header size, JSON header."""
    with open(path, "rb") as handle:
        size_bytes = handle.read(8)
        if len(size_bytes) != 8:
            raise ValueError("file too short for a safetensors header")
        size = int.from_bytes(size_bytes, "little")
        if size > max_header_bytes:
            raise ValueError(f"safetensors header of {size} bytes is too large")
        header = json.loads(handle.read(size))
    return header.get("__metadata__") if isinstance(header, dict) else None


@routes.get("/view_metadata/{folder_name}")
async def view_metadata(request: web.Request) -> web.Response:
    """The ``__metadata__`` of a .safetensors model (header only; weights are not read)."""
    state = state_of(request)
    filename = request.query.get("filename", "")
    folder_key = request.match_info["folder_name"]
    if not filename.endswith(".safetensors") or folder_key not in state.folders:
        raise web.HTTPNotFound()
    path = state.folders.full_path(folder_key, filename)
    if path is None:
        raise web.HTTPNotFound()
    try:
        metadata = await asyncio.to_thread(read_safetensors_metadata, path)
    except (OSError, ValueError) as exc:
        raise web.HTTPBadRequest(text=f"cannot read {filename}: {exc}") from None
    if metadata is None:
        raise web.HTTPNotFound()
    return web.json_response(metadata)


def newest_first(folder: Path) -> list[str]:
    # Hidden names are left out: they are writes in progress (SaveImage writes ``.<name>.<hex>.tmp``
    # and renames it), or what a crash left of one.
    entries = [entry for entry in folder.iterdir()
               if entry.is_file() and not entry.name.startswith(".")] if folder.is_dir() else []
    return [entry.name for entry in sorted(entries, key=lambda e: e.stat().st_mtime, reverse=True)]


async def internal_files(request: web.Request) -> web.Response:
    """``/internal/files/{output|input|temp}``: file names, newest first."""
    folder = state_of(request).folders.directory_for_type(request.match_info["directory_type"])
    if folder is None:
        raise web.HTTPBadRequest(text="unknown directory type")
    return web.json_response(await asyncio.to_thread(newest_first, Path(folder)))
