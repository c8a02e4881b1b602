"""/userdata, /v2/userdata, /users and /settings round trips (ComfyUI's user manager routes)."""

from __future__ import annotations

import json
import uuid

import aiohttp
import pytest

from tests.helpers.kiln_server import run_async


async def fetch(method: str, url: str, **kwargs) -> tuple[int, object]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, **kwargs) as response:
            body = await response.read()
            try:
                return response.status, json.loads(body) if body else None
            except ValueError:
                return response.status, body.decode()


def call(method: str, url: str, **kwargs) -> tuple[int, object]:
    return run_async(fetch(method, url, **kwargs))


@pytest.fixture
def folder() -> str:
    return f"workflows_{uuid.uuid4().hex[:8]}"


def test_a_user_file_round_trips_through_a_url_encoded_name(kiln_process, kiln_server, folder):
    document = {"nodes": [], "links": [], "version": 0.4}
    status, path = call("POST", f"{kiln_server}/userdata/{folder}%2Fmy%20flow.json", data=json.dumps(document))
    assert status == 200 and path == f"{folder}/my flow.json"
    assert (kiln_process.base_dir / "user" / "default" / folder / "my flow.json").is_file()
    assert call("GET", f"{kiln_server}/api/userdata/{folder}%2Fmy%20flow.json") == (200, document)
    assert call("DELETE", f"{kiln_server}/userdata/{folder}%2Fmy%20flow.json")[0] == 204
    assert call("GET", f"{kiln_server}/userdata/{folder}%2Fmy%20flow.json")[0] == 404


def test_overwrite_false_gives_409_and_full_info_describes_the_file(kiln_server, folder):
    url = f"{kiln_server}/userdata/{folder}%2Fa.json"
    assert call("POST", url, data=b"1")[0] == 200
    assert call("POST", url + "?overwrite=false", data=b"2")[0] == 409
    status, info = call("POST", url + "?overwrite=true&full_info=true", data=b"22")
    assert status == 200
    assert info["path"] == f"{folder}/a.json" and info["size"] == 2 and isinstance(info["modified"], int)


def test_listing_with_recurse_full_info_and_split(kiln_server, folder):
    for name in ("one.json", "deeper%2Ftwo.json"):
        call("POST", f"{kiln_server}/userdata/{folder}%2F{name}", data=b"{}")
    assert call("GET", f"{kiln_server}/userdata", params={"dir": folder}) == (200, ["one.json"])
    status, files = call("GET", f"{kiln_server}/userdata", params={"dir": folder, "recurse": "true"})
    assert sorted(files) == ["deeper/two.json", "one.json"]
    _, split = call("GET", f"{kiln_server}/userdata", params={"dir": folder, "recurse": "true", "split": "true"})
    assert ["deeper/two.json", "deeper", "two.json"] in split
    _, full = call("GET", f"{kiln_server}/userdata", params={"dir": folder, "recurse": "true", "full_info": "true"})
    assert {entry["path"] for entry in full} == {"deeper/two.json", "one.json"}
    assert call("GET", f"{kiln_server}/userdata")[0] == 400
    assert call("GET", f"{kiln_server}/userdata", params={"dir": "no-such-dir"})[0] == 404


def test_v2_userdata_lists_children_with_their_type(kiln_server, folder):
    call("POST", f"{kiln_server}/userdata/{folder}%2Fsub%2Fx.json", data=b"{}")
    call("POST", f"{kiln_server}/userdata/{folder}%2Fy.json", data=b"{}")
    status, entries = call("GET", f"{kiln_server}/v2/userdata", params={"path": folder})
    assert status == 200
    assert [(e["name"], e["type"], e["path"]) for e in entries] == [
        ("sub", "directory", f"{folder}/sub"), ("y.json", "file", f"{folder}/y.json")]
    assert call("GET", f"{kiln_server}/v2/userdata", params={"path": f"{folder}/y.json"})[0] == 400


def test_move_renames_and_respects_overwrite(kiln_server, folder):
    call("POST", f"{kiln_server}/userdata/{folder}%2Fa.json", data=b"A")
    call("POST", f"{kiln_server}/userdata/{folder}%2Fb.json", data=b"B")
    assert call("POST", f"{kiln_server}/userdata/{folder}%2Fa.json/move/{folder}%2Fb.json?overwrite=false")[0] == 409
    status, path = call("POST", f"{kiln_server}/userdata/{folder}%2Fa.json/move/{folder}%2Fc.json")
    assert (status, path) == (200, f"{folder}/c.json")
    assert call("GET", f"{kiln_server}/userdata/{folder}%2Fc.json") == (200, "A")
    assert call("POST", f"{kiln_server}/userdata/{folder}%2Fgone.json/move/{folder}%2Fd.json")[0] == 404


@pytest.mark.parametrize("name", ["..%2F..%2Fescape.json", "%2Fetc%2Fpasswd", "a%5Cb.json"])
def test_user_paths_cannot_leave_the_user_folder(kiln_server, name):
    assert call("POST", f"{kiln_server}/userdata/{name}", data=b"x")[0] in (403, 404)


def test_settings_merge_and_single_values(kiln_server):
    key = f"Kiln.Test.{uuid.uuid4().hex[:6]}"
    assert call("POST", f"{kiln_server}/settings", json={key: 1, "Comfy.Other": "x"})[0] == 200
    assert call("GET", f"{kiln_server}/settings/{key}") == (200, 1)
    assert call("POST", f"{kiln_server}/api/settings/{key}", json={"nested": [1, 2]})[0] == 200
    status, settings = call("GET", f"{kiln_server}/settings")
    assert settings[key] == {"nested": [1, 2]} and settings["Comfy.Other"] == "x"
    assert call("GET", f"{kiln_server}/settings/Not.Set") == (200, None)
    assert call("POST", f"{kiln_server}/settings", data=b"[1]")[0] == 400
    assert call("POST", f"{kiln_server}/settings/{key}", data=b"{oops")[0] == 400


def test_users_reports_single_user_server_storage(kiln_server):
    status, body = call("GET", f"{kiln_server}/users")
    assert status == 200 and body["storage"] == "server"
    assert call("POST", f"{kiln_server}/users", json={})[0] == 400
