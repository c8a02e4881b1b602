"""Every path-traversal string against every route and node input that takes a name.

The strings are ``tests/fixtures/traversal_strings.txt`` (parent segments, absolute paths,
backslashes, drive letters, single/double/overlong percent encodings, NUL, Windows dot-space
folding). For each route: the request is refused with a 4xx, never answers with a file
from outside its root (canary files sit next to the roots), writes nothing anywhere, and the
server keeps serving. One server serves the whole module, so many strings share a start-up.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from PIL import Image

from tests.helpers.kiln_server import REPO_ROOT, KilnProcess, launch
from tests.reliability.kiln_http import KilnHttp, error_message, file_tree, segment

ATTACKS = [line for line in (REPO_ROOT / "tests/fixtures/traversal_strings.txt").read_text().splitlines() if line]
CANARY = b"KILN-CANARY-do-not-serve"
REFUSED = (400, 403, 404)


def png(color=(200, 30, 30, 255), size=(4, 4)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KilnProcess]:
    outside = tmp_path_factory.mktemp("traversal")
    base = outside / "kiln"
    base.mkdir()
    # Canaries one and two levels above every root, where '../x' and '../../x' lead.
    for folder in (outside, base, base / "user"):
        folder.mkdir(exist_ok=True)
        (folder / "secret.txt").write_bytes(CANARY)
        (folder / "secret.png").write_bytes(CANARY)
    kiln = launch(base)
    (base / "input" / "original.png").write_bytes(png())
    (base / "user" / "default").mkdir(parents=True, exist_ok=True)
    (base / "user" / "default" / "mine.json").write_text("{}")
    yield kiln
    kiln.stop()


@pytest.fixture(scope="module")
def http(server) -> KilnHttp:
    return KilnHttp(server.url)


def outside_tree(server: KilnProcess) -> dict:
    """Everything above the server's base folder plus the base folder itself."""
    return file_tree(server.base_dir.parent)


def assert_refused(reply, what: str) -> None:
    assert reply.status in REFUSED, f"{what}: answered {reply.status} {reply.body[:200]!r}"
    assert CANARY not in reply.body and b"root:x:0:0" not in reply.body, f"{what} leaked a file"


def test_view_refuses_every_attack_in_filename_subfolder_and_type(server, http):
    before = outside_tree(server)
    for attack in ATTACKS:
        for query in ({"filename": attack}, {"filename": attack + " [output]"},
                      {"filename": "secret.txt", "subfolder": attack}, {"filename": "secret.png", "subfolder": attack},
                      {"filename": "x.png", "type": attack}, {"filename": attack, "subfolder": attack, "preview": "jpeg"}):
            for route in ("/view", "/api/view"):
                assert_refused(http.request("GET", route, query=query), f"{route} {query}")
    assert outside_tree(server) == before
    assert http.alive()


def test_view_metadata_refuses_every_attack(server, http):
    for attack in ATTACKS:
        for folder in ("checkpoints", segment(attack)):
            reply = http.request("GET", f"/view_metadata/{folder}", query={"filename": attack + ".safetensors"})
            assert_refused(reply, f"/view_metadata/{folder} {attack!r}")
    assert http.alive()


def test_uploads_refuse_every_attack_and_write_nothing(server, http):
    before = outside_tree(server)
    original = json.dumps({"filename": "original.png", "subfolder": "", "type": "input"})
    for attack in ATTACKS:
        for route in ("/upload/image", "/upload/mask"):
            extra = {"original_ref": original} if route == "/upload/mask" else {}
            cases = [(attack, {}), ("fine.png", {"subfolder": attack}), ("fine.png", {"type": attack})]
            for file_name, fields in cases:
                reply = http.upload(route, file_name, png(), overwrite="true", **fields, **extra)
                assert reply.status == 400, f"{route} {file_name!r} {fields}: {reply.status} {reply.text}"
                assert reply.text, "a refusal says why"
        for reference in ({"filename": attack, "subfolder": "", "type": "input"},
                          {"filename": "original.png", "subfolder": attack, "type": "input"},
                          {"filename": "original.png", "subfolder": "", "type": attack},
                          {"filename": "secret.png", "subfolder": attack, "type": "input"}):
            reply = http.upload("/upload/mask", "fine.png", png(), original_ref=json.dumps(reference))
            assert reply.status == 400, f"/upload/mask original_ref={reference}: {reply.status} {reply.text}"
    assert outside_tree(server) == before, "a refused upload wrote a file"
    assert http.alive()


def test_userdata_refuses_every_attack_in_every_method(server, http):
    user_root = server.base_dir / "user" / "default"
    before = outside_tree(server)
    # Reads first: if a read escaped, the writes below would not be attempted (-x stops the run).
    for attack in ATTACKS:
        assert_refused(http.get(f"/userdata/{segment(attack)}"), f"GET /userdata {attack!r}")
        assert_refused(http.get("/userdata", dir=attack), f"GET /userdata?dir={attack!r}")
        assert_refused(http.get("/v2/userdata", path=attack), f"GET /v2/userdata?path={attack!r}")
    for attack in ATTACKS:
        encoded = segment(attack)
        for method, path in (("POST", f"/userdata/{encoded}"), ("POST", f"/api/userdata/{encoded}?overwrite=true"),
                             ("DELETE", f"/userdata/{encoded}"),
                             ("POST", f"/userdata/{encoded}/move/mine.json"),
                             ("POST", f"/userdata/mine.json/move/{encoded}")):
            reply = http.request(method, path, body=b"KILN-ATTACK-PAYLOAD")
            assert_refused(reply, f"{method} {path}")
    assert (user_root / "mine.json").read_text() == "{}", "the move source stays where it was"
    assert outside_tree(server) == before
    assert http.alive()


def loader_chains(name: str) -> dict:
    """One prompt in which every built-in node that opens a named file receives ``name``.

    Each loader is wired to an output node, so validation reaches it.
    """
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": name}},
        "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": name, "weight_dtype": "default"}},
        "clip": {"class_type": "CLIPLoader", "inputs": {"clip_name": name, "type": "stable_diffusion"}},
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": name}},
        "image": {"class_type": "LoadImage", "inputs": {"image": name}},
        "mask": {"class_type": "LoadImageMask", "inputs": {"image": name, "channel": "alpha"}},
        "text": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["clip", 0]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "sample": {"class_type": "KSampler", "inputs": {
            "model": ["unet", 0], "positive": ["text", 0], "negative": ["text", 0], "latent_image": ["latent", 0],
            "seed": 1, "steps": 1, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sample", 0], "vae": ["vae", 0]}},
        "decode_ckpt": {"class_type": "VAEDecode", "inputs": {"samples": ["latent", 0], "vae": ["ckpt", 2]}},
        "save1": {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": "a"}},
        "save2": {"class_type": "SaveImage", "inputs": {"images": ["decode_ckpt", 0], "filename_prefix": "a"}},
        "save3": {"class_type": "SaveImage", "inputs": {"images": ["image", 0], "filename_prefix": "a"}},
        "mask_image": {"class_type": "MaskToImage", "inputs": {"mask": ["mask", 0]}},
        "save4": {"class_type": "SaveImage", "inputs": {"images": ["mask_image", 0], "filename_prefix": "a"}},
    }


LOADERS = ("ckpt", "unet", "clip", "vae", "image", "mask")


def test_model_and_image_names_in_prompts_are_refused_at_validation(server, http):
    before = outside_tree(server)
    for attack in ATTACKS:
        for name in (attack, attack + " [output]", "../" + attack):
            reply = http.post_json("/prompt", {"prompt": loader_chains(name)})
            assert reply.status == 400, f"{name!r}: {reply.status} {reply.text[:300]}"
            node_errors = reply.json()["node_errors"]
            assert sorted(node_errors.keys() & set(LOADERS)) == sorted(LOADERS), (name, sorted(node_errors))
            for loader in LOADERS:
                (error, *_) = node_errors[loader]["errors"]
                assert error["type"] in ("value_not_in_list", "custom_validation_failed"), error
    assert http.get("/queue").json() == {"queue_running": [], "queue_pending": []}
    assert outside_tree(server) == before
    assert http.alive()


def test_save_image_refuses_every_attack_prefix_and_writes_nothing(server, http):
    before = outside_tree(server)
    prompt_ids = {}
    for index, attack in enumerate(ATTACKS):
        prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                               "color": index}},
                  "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": attack}}}
        prompt_ids[http.queue_prompt(prompt)] = attack
    entries = http.wait_for_history(list(prompt_ids), timeout=120)
    for prompt_id, entry in entries.items():
        error = error_message(entry)
        assert entry["status"]["status_str"] == "error" and error, (prompt_ids[prompt_id], entry["outputs"])
        assert error["node_id"] == "2" and "outside the output folder" in error["exception_message"], error
    assert outside_tree(server) == before, "a refused prefix wrote a file"
    assert http.alive()


SCRIPT_TYPES = {"text/html", "text/html-sandboxed", "application/xhtml+xml", "text/javascript",
                "application/javascript", "application/x-javascript", "text/css", "image/svg+xml",
                "application/xml", "text/xml", "application/xslt+xml"}


@pytest.mark.parametrize("suffix", ["html", "htm", "shtml", "xhtml", "js", "mjs", "css", "svg", "xml", "xsl"])
def test_view_never_serves_a_type_a_browser_would_run_script_from(server, http, suffix):
    name = f"page.{suffix}"
    (server.base_dir / "output" / name).write_text("<script>alert(document.cookie)</script>")
    for query in ({"filename": name}, {"filename": name, "channel": "rgba"}):
        reply = http.get("/view", **query)
        assert reply.status == 200
        content_type = reply.headers["Content-Type"].split(";")[0].strip().lower()
        sandboxed = "sandbox" in reply.headers.get("Content-Security-Policy", "")
        assert content_type not in SCRIPT_TYPES or sandboxed, f"{name} served as {content_type}"
        assert reply.headers.get("X-Content-Type-Options") == "nosniff"
