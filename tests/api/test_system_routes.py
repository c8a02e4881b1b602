"""/system_stats, /features, /embeddings, /models, /extensions, /workflow_templates, /internal,
static files and the cache headers (comfy-compat §1.1, §1.2, §1.8)."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.helpers.kiln_server import REPO_ROOT, run_async


async def fetch(method: str, url: str, **kwargs) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, **kwargs) as response:
            return response.status, dict(response.headers), await response.read()


def get_json(url: str) -> object:
    status, _, body = run_async(fetch("GET", url))
    assert status == 200, (url, status, body[:200])
    return json.loads(body)


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_system_stats_has_comfyui_keys_and_kiln_reports(kiln_server, prefix):
    stats = get_json(kiln_server + prefix + "/system_stats")
    assert {"os", "ram_total", "ram_free", "comfyui_version", "python_version", "pytorch_version",
            "embedded_python", "argv"} <= set(stats["system"])
    assert stats["system"]["ram_total"] >= stats["system"]["ram_free"] > 0
    device = stats["devices"][0]
    assert {"name", "type", "index", "vram_total", "vram_free", "torch_vram_total", "torch_vram_free"} <= set(device)
    plugins = {p["name"]: p for p in stats["kiln"]["plugins"]}
    assert plugins["example"]["error"] is None and plugins["example"]["seconds"] >= 0


def test_features_announce_preview_metadata_and_upload_limit(kiln_server):
    assert get_json(kiln_server + "/features") == {"supports_preview_metadata": True, "max_upload_size": 100 * 1024 * 1024}


def test_models_list_folder_keys_and_files(kiln_process, kiln_server):
    keys = get_json(kiln_server + "/models")
    assert {"checkpoints", "loras", "vae", "embeddings", "controlnet"} <= set(keys)
    checkpoints = kiln_process.base_dir / "models" / "checkpoints" / "nested"
    checkpoints.mkdir(parents=True, exist_ok=True)
    (checkpoints / "tiny.safetensors").write_bytes(b"x")
    (checkpoints / "notes.txt").write_text("not a model")
    assert "nested/tiny.safetensors" in get_json(kiln_server + "/api/models/checkpoints")
    assert "nested/notes.txt" not in get_json(kiln_server + "/models/checkpoints")
    assert run_async(fetch("GET", kiln_server + "/models/not_a_folder"))[0] == 404


def test_embeddings_are_listed_without_extension(kiln_process, kiln_server):
    embeddings = kiln_process.base_dir / "models" / "embeddings"
    embeddings.mkdir(parents=True, exist_ok=True)
    (embeddings / "easynegative.safetensors").write_bytes(b"x")
    assert "easynegative" in get_json(kiln_server + "/embeddings")


def test_internal_folder_paths_maps_keys_to_directories(kiln_process, kiln_server):
    paths = get_json(kiln_server + "/internal/folder_paths")
    assert str(kiln_process.base_dir / "models" / "checkpoints") in paths["checkpoints"]
    assert paths["custom_nodes"] == [str(kiln_process.base_dir / "custom_nodes")]


def test_workflow_templates_lists_the_shipped_templates(kiln_server):
    templates = get_json(kiln_server + "/workflow_templates")
    shipped = sorted(p.stem for p in (REPO_ROOT / "web" / "templates").glob("*.json"))
    assert templates.get("kiln", []) == shipped


def test_index_is_never_cached_and_scripts_get_no_cache(kiln_server):
    status, headers, _ = run_async(fetch("GET", kiln_server + "/"))
    if (REPO_ROOT / "web" / "index.html").is_file():
        assert status == 200
        assert headers["Cache-Control"] == "no-cache" and headers["Pragma"] == "no-cache" and headers["Expires"] == "0"
    else:
        assert status == 404
    status, headers, _ = run_async(fetch("GET", kiln_server + "/extensions/example/missing.js"))
    assert status == 404 and headers["Cache-Control"] == "no-cache"


def test_unknown_routes_are_404_not_500(kiln_server):
    assert run_async(fetch("GET", kiln_server + "/api/definitely/not/here"))[0] == 404
