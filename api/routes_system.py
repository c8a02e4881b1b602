"""Server facts: ``/system_stats``, ``/features``, ``/embeddings``, ``/models``,
``/extensions``, ``/workflow_templates``, ``/i18n``, ``/internal/folder_paths``.

Shapes: comfy-compat §1.2, §1.8. ``/system_stats`` also carries a ``"kiln"`` key with the
custom-node load reports. Nothing here imports torch: device figures come from torch only
when something else already imported it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from aiohttp import web

from api.state import ServerState, state_of

routes = web.RouteTableDef()

KILN_VERSION = "0.1.0"


def ram_bytes() -> tuple[int, int]:
    """(total, available) physical memory, from ``/proc/meminfo`` or ``sysconf``."""
    try:
        fields = {}
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                key, value = line.split(":", 1)
                fields[key] = int(value.split()[0]) * 1024
        return fields["MemTotal"], fields.get("MemAvailable", fields.get("MemFree", 0))
    except (OSError, KeyError, ValueError):
        page = os.sysconf("SC_PAGE_SIZE")
        return os.sysconf("SC_PHYS_PAGES") * page, os.sysconf("SC_AVPHYS_PAGES") * page


def torch_version() -> str:
    torch = sys.modules.get("torch")
    if torch is not None:
        return str(torch.__version__)
    import importlib.metadata  # lazily: 20 ms of start-up otherwise

    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return ""


def device_stats(ram_total: int, ram_free: int) -> list[dict]:
    """CUDA devices when torch is already loaded and sees them; otherwise the CPU."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        devices = []
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            reserved = torch.cuda.memory_reserved(index)
            allocated = torch.cuda.memory_allocated(index)
            devices.append({"name": f"cuda:{index} {torch.cuda.get_device_name(index)}", "type": "cuda",
                            "index": index, "vram_total": total, "vram_free": free,
                            "torch_vram_total": reserved, "torch_vram_free": reserved - allocated})
        return devices
    return [{"name": "cpu", "type": "cpu", "index": None, "vram_total": ram_total, "vram_free": ram_free,
             "torch_vram_total": 0, "torch_vram_free": 0}]


def plugin_reports(state: ServerState) -> list[dict]:
    return [{"name": r.name, "path": str(r.path), "seconds": round(float(r.seconds), 4), "error": r.error}
            for r in state.registry.plugin_reports]


SECRET_FLAGS = ("--auth-token",)


def redacted_argv(argv: list[str]) -> list[str]:
    """``argv`` with the value of every secret flag replaced, as ``/system_stats`` shows it."""
    shown, hide_next = [], False
    for arg in argv:
        flag = arg.split("=", 1)[0]
        if hide_next:
            shown.append("<redacted>")
        elif flag in SECRET_FLAGS and "=" in arg:
            shown.append(flag + "=<redacted>")
        else:
            shown.append(arg)
        hide_next = not hide_next and arg in SECRET_FLAGS
    return shown


@routes.get("/system_stats")
async def system_stats(request: web.Request) -> web.Response:
    state = state_of(request)
    ram_total, ram_free = ram_bytes()
    return web.json_response({
        "system": {"os": os.name, "ram_total": ram_total, "ram_free": ram_free,
                   "comfyui_version": KILN_VERSION, "required_frontend_version": "",
                   "installed_templates_version": "", "required_templates_version": "",
                   "python_version": sys.version, "pytorch_version": torch_version(),
                   "embedded_python": False, "argv": redacted_argv(sys.argv)},
        "devices": device_stats(ram_total, ram_free),
        "kiln": {"version": KILN_VERSION, "plugins": plugin_reports(state),
                 "torch_loaded": "torch" in sys.modules, "queue_paused": bool(getattr(state.queue, "paused", False))},
    })


def server_features(state: ServerState) -> dict:
    return {"supports_preview_metadata": True, "max_upload_size": state.max_upload_bytes}


@routes.get("/features")
async def features(request: web.Request) -> web.Response:
    return web.json_response(server_features(state_of(request)))


@routes.get("/embeddings")
async def embeddings(request: web.Request) -> web.Response:
    files = await asyncio.to_thread(state_of(request).folders.list_files, "embeddings")
    return web.json_response([os.path.splitext(name)[0] for name in files])


@routes.get("/models")
async def model_folders(request: web.Request) -> web.Response:
    return web.json_response(state_of(request).folders.folder_keys())


@routes.get("/models/{folder}")
async def model_files(request: web.Request) -> web.Response:
    folders = state_of(request).folders
    key = request.match_info["folder"]
    if key not in folders:
        raise web.HTTPNotFound(text=f"unknown model folder {key!r}")
    return web.json_response(await asyncio.to_thread(folders.list_files, key))


def extension_urls(web_directories: dict[str, Path]) -> list[str]:
    """``/extensions/<name>/<relative path>`` of every ``.js`` file in the plugins' web dirs."""
    urls = []
    for name, folder in web_directories.items():
        for script in sorted(Path(folder).rglob("*.js")):
            urls.append(f"/extensions/{name}/{script.relative_to(folder).as_posix()}")
    return urls


@routes.get("/extensions")
async def extensions(request: web.Request) -> web.Response:
    return web.json_response(extension_urls(state_of(request).registry.web_directories))


def template_names(state: ServerState) -> dict[str, list[str]]:
    """``{source: [workflow names]}``: Kiln's ``web/templates`` plus plugins' ``example_workflows``."""
    found = {}
    templates = state.web_root / "templates"
    if templates.is_dir():
        found["kiln"] = sorted(p.stem for p in templates.glob("*.json"))
    for report in state.registry.plugin_reports:
        examples = Path(report.path) / "example_workflows"
        if examples.is_dir():
            found[report.name] = sorted(p.stem for p in examples.glob("*.json"))
    return found


@routes.get("/workflow_templates")
async def workflow_templates(request: web.Request) -> web.Response:
    return web.json_response(await asyncio.to_thread(template_names, state_of(request)))


@routes.get("/i18n")
async def i18n(request: web.Request) -> web.Response:
    return web.json_response({})


async def internal_folder_paths(request: web.Request) -> web.Response:
    folders = state_of(request).folders
    return web.json_response({key: [str(p) for p in folders.paths(key)] for key in folders.folder_keys()})
