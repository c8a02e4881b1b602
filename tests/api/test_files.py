"""/view, /upload/image, /upload/mask, /view_metadata and /internal/files (comfy-compat §1.5–§1.6)."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import uuid

import aiohttp
import pytest
from PIL import Image, PngImagePlugin

from tests.helpers.kiln_server import run_async


def png_bytes(size=(4, 3), color=(10, 20, 30, 128), text: dict | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.new("RGBA", size, color).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


async def fetch(method: str, url: str, **kwargs) -> tuple[int, dict, bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, **kwargs) as response:
            return response.status, dict(response.headers), await response.read()


def call(method: str, url: str, **kwargs) -> tuple[int, dict, bytes]:
    return run_async(fetch(method, url, **kwargs))


@pytest.fixture
def output_file(kiln_process):
    name = f"view_{uuid.uuid4().hex[:8]}.png"
    folder = kiln_process.base_dir / "output" / "sub"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(png_bytes())
    return name


def test_view_serves_a_file_with_content_disposition(kiln_server, output_file):
    status, headers, body = call("GET", kiln_server + "/view", params={"filename": output_file, "subfolder": "sub"})
    assert status == 200
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Disposition"] == f'filename="{output_file}"'
    assert Image.open(io.BytesIO(body)).mode == "RGBA"


def test_view_annotated_name_picks_the_folder(kiln_process, kiln_server):
    name = f"annotated_{uuid.uuid4().hex[:8]}.png"
    (kiln_process.base_dir / "input" / name).write_bytes(png_bytes())
    assert call("GET", kiln_server + "/api/view", params={"filename": f"{name} [input]"})[0] == 200
    assert call("GET", kiln_server + "/view", params={"filename": name})[0] == 404


@pytest.mark.parametrize("params, expected", [
    ({"filename": ""}, 400),
    ({"filename": "/etc/passwd"}, 400),
    ({"filename": "../secret.png"}, 400),
    ({"filename": "a.png", "type": "models"}, 400),
    ({"filename": "a.png", "subfolder": "../../"}, 403),
    ({"filename": "a.png", "subfolder": "/etc"}, 403),
    ({"filename": "missing.png"}, 404),
])
def test_view_refuses_bad_names_with_the_status_comfyui_uses(kiln_server, params, expected):
    assert call("GET", kiln_server + "/view", params=params)[0] == expected


def test_view_never_serves_html_as_html(kiln_process, kiln_server):
    (kiln_process.base_dir / "output" / "page.html").write_text("<script>alert(1)</script>")
    status, headers, _ = call("GET", kiln_server + "/view", params={"filename": "page.html"})
    assert status == 200
    assert headers["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize("preview, fmt", [("jpeg;50", "JPEG"), ("webp", "WEBP"), ("gif", "WEBP")])
def test_view_preview_reencodes(kiln_server, output_file, preview, fmt):
    status, headers, body = call("GET", kiln_server + "/view",
                                 params={"filename": output_file, "subfolder": "sub", "preview": preview})
    assert status == 200
    assert Image.open(io.BytesIO(body)).format == fmt


def test_view_channels_split_colour_and_alpha(kiln_server, output_file):
    params = {"filename": output_file, "subfolder": "sub"}
    _, _, rgb = call("GET", kiln_server + "/view", params={**params, "channel": "rgb"})
    assert Image.open(io.BytesIO(rgb)).mode == "RGB"
    _, _, alpha = call("GET", kiln_server + "/view", params={**params, "channel": "a"})
    image = Image.open(io.BytesIO(alpha))
    assert image.mode == "RGBA" and image.getpixel((0, 0)) == (0, 0, 0, 128)


def upload_form(data: bytes, filename: str, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("image", data, filename=filename, content_type="image/png")
    for key, value in fields.items():
        form.add_field(key, value)
    return form


def upload(url: str, data: bytes, filename: str, route: str = "/upload/image", **fields: str):
    status, _, body = call("POST", url + route, data=upload_form(data, filename, **fields))
    return status, (json.loads(body) if status == 200 else body.decode())


def test_upload_dedups_identical_content_and_suffixes_different_content(kiln_process, kiln_server):
    subfolder = uuid.uuid4().hex[:8]
    first = png_bytes(color=(1, 2, 3, 255))
    assert upload(kiln_server, first, "pic.png", subfolder=subfolder) == (200, {"name": "pic.png", "subfolder": subfolder, "type": "input"})
    assert upload(kiln_server, first, "pic.png", subfolder=subfolder)[1]["name"] == "pic.png"
    second = png_bytes(color=(9, 9, 9, 255))
    assert upload(kiln_server, second, "pic.png", subfolder=subfolder)[1]["name"] == "pic (1).png"
    third = png_bytes(color=(7, 7, 7, 255))
    assert upload(kiln_server, third, "pic.png", subfolder=subfolder)[1]["name"] == "pic (2).png"
    folder = kiln_process.base_dir / "input" / subfolder
    assert hashlib.sha256((folder / "pic (1).png").read_bytes()).hexdigest() == hashlib.sha256(second).hexdigest()

    assert upload(kiln_server, third, "pic.png", subfolder=subfolder, overwrite="true")[1]["name"] == "pic.png"
    assert (folder / "pic.png").read_bytes() == third


@pytest.mark.parametrize("data, filename, fields", [
    (b"definitely not an image", "x.png", {}),
    (None, "../escape.png", {}),
    (None, "x.png", {"subfolder": "../.."}),
    (None, "x.png", {"type": "models"}),
    (None, "x" * 300 + ".png", {}),
])
def test_bad_uploads_get_a_400_with_a_message(kiln_server, data, filename, fields):
    status, message = upload(kiln_server, data if data is not None else png_bytes(), filename, **fields)
    assert status == 400
    assert message


def test_a_dedup_suffix_that_makes_the_name_too_long_is_a_400(kiln_server):
    subfolder = uuid.uuid4().hex[:8]
    longest = "y" * 251 + ".png"  # exactly 255 bytes: legal until " (1)" is added
    assert upload(kiln_server, png_bytes(color=(1, 1, 1, 255)), longest, subfolder=subfolder)[0] == 200
    status, message = upload(kiln_server, png_bytes(color=(2, 2, 2, 255)), longest, subfolder=subfolder)
    assert status == 400
    assert "cannot store upload" in message


def test_upload_refuses_a_decompression_bomb(kiln_server):
    buffer = io.BytesIO()
    Image.new("1", (9500, 9500)).save(buffer, format="PNG")  # 90 M pixels in a few kB
    status, message = upload(kiln_server, buffer.getvalue(), "bomb.png")
    assert status == 400
    assert "pixels" in message


def test_upload_without_a_file_part_is_a_400(kiln_server):
    form = aiohttp.FormData()
    form.add_field("type", "input")
    assert call("POST", kiln_server + "/upload/image", data=form)[0] == 400
    assert call("POST", kiln_server + "/upload/image", json={"image": "x"})[0] == 400


def test_upload_mask_puts_the_mask_alpha_on_the_original_and_keeps_its_text(kiln_process, kiln_server):
    original = png_bytes(size=(5, 5), color=(200, 100, 50, 255), text={"workflow": "{}"})
    name = f"orig_{uuid.uuid4().hex[:8]}.png"
    upload(kiln_server, original, name)
    mask = png_bytes(size=(5, 5), color=(0, 0, 0, 40))
    ref = json.dumps({"filename": name, "subfolder": "", "type": "input"})
    status, body = upload(kiln_server, mask, "clipspace-mask.png", route="/upload/mask", original_ref=ref)
    assert status == 200 and body["type"] == "input"
    result = Image.open(kiln_process.base_dir / "input" / body["name"])
    assert result.getpixel((2, 2)) == (200, 100, 50, 40)
    assert result.text["workflow"] == "{}"


def test_upload_mask_needs_a_valid_original_ref(kiln_server):
    status, _ = upload(kiln_server, png_bytes(), "m.png", route="/upload/mask",
                       original_ref=json.dumps({"filename": "../../etc/passwd"}))
    assert status == 400
    status, _ = upload(kiln_server, png_bytes(), "m.png", route="/upload/mask", original_ref="{broken")
    assert status == 400


def safetensors_file(metadata: dict | None) -> bytes:
    header = {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    if metadata is not None:
        header["__metadata__"] = metadata
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + b"\x00\x00\x80\x3f"


def test_view_metadata_returns_the_safetensors_header_metadata(kiln_process, kiln_server):
    loras = kiln_process.base_dir / "models" / "loras"
    loras.mkdir(parents=True, exist_ok=True)
    (loras / "styled.safetensors").write_bytes(safetensors_file({"ss_network_dim": "8"}))
    (loras / "bare.safetensors").write_bytes(safetensors_file(None))
    status, _, body = call("GET", kiln_server + "/view_metadata/loras", params={"filename": "styled.safetensors"})
    assert status == 200 and json.loads(body) == {"ss_network_dim": "8"}
    assert call("GET", kiln_server + "/api/view_metadata/loras", params={"filename": "bare.safetensors"})[0] == 404
    assert call("GET", kiln_server + "/view_metadata/loras", params={"filename": "styled.ckpt"})[0] == 404
    assert call("GET", kiln_server + "/view_metadata/nope", params={"filename": "styled.safetensors"})[0] == 404


def test_internal_files_lists_newest_first_and_has_no_api_copy(kiln_process, kiln_server):
    import os
    import time

    temp = kiln_process.base_dir / "temp"
    for index, name in enumerate(("old.png", "new.png")):
        (temp / name).write_bytes(b"x")
        os.utime(temp / name, (time.time() + index * 10, time.time() + index * 10))
    status, _, body = call("GET", kiln_server + "/internal/files/temp")
    assert status == 200 and json.loads(body)[:2] == ["new.png", "old.png"]
    assert call("GET", kiln_server + "/internal/files/models")[0] == 400
    assert call("GET", kiln_server + "/api/internal/files/temp")[0] == 404
