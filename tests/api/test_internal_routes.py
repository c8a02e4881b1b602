"""/internal/logs, /internal/logs/raw, PATCH /internal/logs/subscribe and /experiment/models*
(comfy-compat §1.2: the ``/internal`` sub-app has no ``/api`` copy; the model browser does)."""

from __future__ import annotations

import io
import json
import uuid

import aiohttp
import pytest
from PIL import Image

from api.log_buffer import LogBuffer
from tests.helpers.kiln_server import run_async, ws_connect


async def fetch(method: str, url: str, **kwargs) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, **kwargs) as response:
            return response.status, await response.read(), response.content_type


def get_json(url: str) -> object:
    status, body, _ = run_async(fetch("GET", url))
    assert status == 200, (url, status, body[:200])
    return json.loads(body)


def test_logs_hold_the_servers_recent_lines_as_one_string(kiln_server):
    text = get_json(kiln_server + "/internal/logs")
    assert isinstance(text, str) and text.endswith("\n")


def test_raw_logs_are_timestamped_entries(kiln_server):
    raw = get_json(kiln_server + "/internal/logs/raw")
    assert set(raw) == {"entries", "size"}
    assert all(set(entry) == {"t", "m"} for entry in raw["entries"])


def test_internal_routes_have_no_api_copy(kiln_server):
    assert run_async(fetch("GET", kiln_server + "/api/internal/logs"))[0] == 404


def test_a_subscribed_socket_receives_new_log_lines(kiln_server):
    async def scenario() -> dict:
        client_id = uuid.uuid4().hex
        async with aiohttp.ClientSession() as session:
            socket = await ws_connect(session, kiln_server, client_id)
            async with session.patch(kiln_server + "/internal/logs/subscribe",
                                     json={"clientId": client_id, "enabled": True}) as response:
                assert response.status == 200
            # A prompt that fails validation is logged by the server, which makes a new line.
            async with session.post(kiln_server + "/prompt", json={"prompt": {"1": {"class_type": "Nope", "inputs": {}}}}):
                pass
            return await socket.wait_for(lambda message: message.get("type") == "logs", timeout=20)

    message = run_async(scenario())
    assert message["data"]["entries"] and "m" in message["data"]["entries"][0]


def test_subscribe_needs_a_client_id(kiln_server):
    assert run_async(fetch("PATCH", kiln_server + "/internal/logs/subscribe", json={"enabled": True}))[0] == 400


def test_log_buffer_keeps_the_last_lines_and_forwards_only_to_subscribers():
    import logging

    sent: list[tuple] = []
    buffer = LogBuffer(capacity=3)
    buffer.send = lambda event, data, sid: sent.append((event, sid, data["entries"][0]["m"]))
    logger = logging.getLogger("kiln.test.logbuffer")
    logger.addHandler(buffer)
    logger.setLevel(logging.INFO)
    try:
        for number in range(5):
            logger.info("line %d", number)
        buffer.subscribe("client-a", True)
        logger.info("streamed")
        buffer.subscribe("client-a", False)
        logger.info("quiet")
    finally:
        logger.removeHandler(buffer)
    assert [entry["m"].split(": ", 1)[1] for entry in buffer.entries()] == ["line 4\n", "streamed\n", "quiet\n"]
    assert [(event, sid) for event, sid, _ in sent] == [("logs", "client-a")]
    assert sent[0][2].endswith("streamed\n")


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_model_browser_lists_folders_files_and_previews(kiln_process, kiln_server, prefix):
    folder = kiln_process.base_dir / "models" / "loras" / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "style.safetensors").write_bytes(b"\0" * 16)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(folder / "style.png")

    keys = {entry["name"]: entry["folders"] for entry in get_json(kiln_server + prefix + "/experiment/models")}
    assert "loras" in keys and keys["loras"]

    files = get_json(kiln_server + prefix + "/experiment/models/loras")
    entry = next(item for item in files if item["name"] == "browser/style.safetensors")
    assert entry["pathIndex"] == 0 and entry["size"] == 16 and entry["modified"] > 0
    assert not any(item["name"].endswith(".png") for item in files)  # previews are not models

    status, body, content_type = run_async(fetch("GET", kiln_server + prefix + "/experiment/models/preview/loras/0/browser/style.safetensors"))
    assert status == 200 and content_type == "image/webp"
    assert Image.open(io.BytesIO(body)).getpixel((4, 4))[0] > 150


def test_model_browser_refuses_unknown_folders_and_escapes(kiln_server):
    assert run_async(fetch("GET", kiln_server + "/experiment/models/no_such_folder"))[0] == 404
    assert run_async(fetch("GET", kiln_server + "/experiment/models/preview/loras/0/%2e%2e/%2e%2e/secret"))[0] in (400, 404)
    assert run_async(fetch("GET", kiln_server + "/experiment/models/preview/loras/9/x.safetensors"))[0] == 400
