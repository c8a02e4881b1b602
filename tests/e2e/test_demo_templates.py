"""The editor's control and editing templates open, compile and run on the demo model through the real server.

``web/templates/{inpainting,outpainting,area_composition,controlnet,controlnet_silhouette}.json`` are UI
workflows (schema 0.4) built on ``kiln-demo`` and the example pictures in ``input/``. Each one is listed by
``/workflow_templates``, compiled by ``/workflow/compile`` against the server's ``/object_info``,
validated and run by ``/prompt``, and its saved picture is checked for what the template promises.

The ControlNet templates run on the shipped ``models/controlnet/kiln-demo-edges.safetensors`` (Canny
edges of a picture) and ``kiln-demo-silhouette.safetensors`` (a painted silhouette, loaded as is).
"""

from __future__ import annotations

import io
import json
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from diffusion.demo.editing import example_silhouette_scene, shape_iou
from diffusion.demo.metrics import read_image
from tests.helpers.kiln_server import REPO_ROOT, KilnProcess, launch

TEMPLATES = REPO_ROOT / "web" / "templates"
CHECKPOINT = REPO_ROOT / "models" / "checkpoints" / "kiln-demo.safetensors"
CONTROLNETS = REPO_ROOT / "models" / "controlnet"
# ControlNet template -> (its ControlNet file, the nodes that make its hint from the loaded picture).
TEMPLATE_CONTROLNET = {"controlnet": ("kiln-demo-edges.safetensors", {"Canny"}),
                       "controlnet_silhouette": ("kiln-demo-silhouette.safetensors", set())}
INPUTS = ("kiln-demo-scene.png", "kiln-demo-inpaint.png", "kiln-demo-silhouette.png")
# Template -> size (width, height) of the picture it saves.
SAVED_SIZE = {"inpainting": (64, 64), "outpainting": (96, 64), "area_composition": (128, 64), "controlnet": (64, 64),
              "controlnet_silhouette": (64, 64)}

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KilnProcess]:
    base = tmp_path_factory.mktemp("demo-templates")
    (base / "models" / "checkpoints").mkdir(parents=True)
    (base / "models" / "checkpoints" / CHECKPOINT.name).symlink_to(CHECKPOINT)
    (base / "models" / "controlnet").mkdir(parents=True)
    for name, _ in TEMPLATE_CONTROLNET.values():
        (base / "models" / "controlnet" / name).symlink_to(CONTROLNETS / name)
    (base / "input").mkdir()
    for name in INPUTS:  # a fresh clone has these in input/, the server's default input folder
        shutil.copy(REPO_ROOT / "input" / name, base / "input" / name)
    kiln = launch(base)
    yield kiln
    kiln.stop()


def http_json(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def compile_template(url: str, name: str) -> dict:
    workflow = json.loads((TEMPLATES / f"{name}.json").read_text())
    assert workflow["version"] == 0.4
    return http_json(url + "/workflow/compile", workflow)["prompt"]


def run_prompt(url: str, prompt: dict, timeout: float = 300.0) -> dict:
    """Queue an API prompt and wait for its history entry (the server validates it on the way in)."""
    prompt_id = http_json(url + "/prompt", {"prompt": prompt})["prompt_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = http_json(f"{url}/history/{prompt_id}").get(prompt_id)
        if entry and entry["status"].get("completed") is not None and entry["status"]["status_str"] in ("success", "error"):
            assert entry["status"]["status_str"] == "success", entry["status"]
            return entry
        time.sleep(0.2)
    raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout} s")


def saved_picture(url: str, entry: dict) -> np.ndarray:
    (images,) = [output["images"] for output in entry["outputs"].values() if "images" in output]
    (reference,) = images
    with urllib.request.urlopen(f"{url}/view?{urllib.parse.urlencode(reference)}", timeout=30) as response:
        return np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"))


def test_the_template_menu_lists_the_control_templates(demo_server):
    listed = http_json(demo_server.url + "/workflow_templates")["kiln"]
    assert set(SAVED_SIZE) <= set(listed)


@pytest.mark.parametrize("name", sorted(SAVED_SIZE))
def test_template_compiles_against_the_servers_nodes(demo_server, name):
    object_info = http_json(demo_server.url + "/object_info")
    prompt = compile_template(demo_server.url, name)
    assert {node["class_type"] for node in prompt.values()} <= set(object_info)
    loaders = {node["class_type"]: node["inputs"] for node in prompt.values()}
    assert loaders["CheckpointLoaderSimple"]["ckpt_name"] == CHECKPOINT.name
    if "LoadImage" in loaders:
        assert loaders["LoadImage"]["image"] in INPUTS
        assert loaders["LoadImage"]["image"] in object_info["LoadImage"]["input"]["required"]["image"][0]
    if "ControlNetLoader" in loaders:
        controlnet, hint_nodes = TEMPLATE_CONTROLNET[name]
        assert loaders["ControlNetLoader"]["control_net_name"] == controlnet
        assert {node["class_type"] for node in prompt.values()} >= {"ControlNetApplyAdvanced", *hint_nodes}


@pytest.mark.parametrize("name", sorted(SAVED_SIZE))
def test_template_runs_on_the_demo_model(demo_server, name):
    picture = saved_picture(demo_server.url, run_prompt(demo_server.url, compile_template(demo_server.url, name)))
    width, height = SAVED_SIZE[name]
    assert picture.shape == (height, width, 3)
    assert picture.std() > 10, "a generated picture is not a flat colour"
    if name == "inpainting":
        # ImageCompositeMasked keeps every pixel outside the transparent box exactly.
        with Image.open(REPO_ROOT / "input" / "kiln-demo-inpaint.png") as example:
            rgba = np.asarray(example.convert("RGBA"))
        outside = rgba[..., 3] == 255
        assert np.array_equal(picture[outside], rgba[..., :3][outside])
        assert np.abs(picture[~outside].astype(int) - rgba[..., :3][~outside]).mean() > 20, "the masked box changed"
    if name == "outpainting":
        # The 32 px pad on the right is filled, not left as the grey fill, and continues the blue background.
        pad = picture[:, 64:].reshape(-1, 3).astype(np.float32)
        assert np.linalg.norm(pad - 127.5, axis=1).mean() > 60
        assert np.argmax(np.median(pad, axis=0)) == 2
    if name == "controlnet_silhouette":
        # The red ring goes where the loaded silhouette is, though the prompt names no place
        # (IoU 0.90 when measured; 0.13 is typical without the ControlNet).
        assert shape_iou(picture, example_silhouette_scene().shapes[0]) >= 0.6
        assert read_image(picture).colour == "red"
