"""``python server.py --run WORKFLOW``: API or UI JSON, or a PNG carrying one; exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from tests.helpers.kiln_server import REPO_ROOT, install_plugins

API_PROMPT = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 4, "batch_size": 2, "color": 0xFF0000}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "headless/run"}},
}

UI_WORKFLOW = {
    "last_node_id": 2, "last_link_id": 1, "version": 0.4, "groups": [], "config": {}, "extra": {},
    "nodes": [
        {"id": 1, "type": "EmptyImage", "pos": [0, 0], "size": [200, 100], "flags": {}, "order": 0, "mode": 0,
         "inputs": [], "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}], "properties": {},
         "widgets_values": [6, 6, 1, 255]},
        {"id": 2, "type": "SaveImage", "pos": [300, 0], "size": [200, 100], "flags": {}, "order": 1, "mode": 0,
         "inputs": [{"name": "images", "type": "IMAGE", "link": 1}], "outputs": [], "properties": {},
         "widgets_values": ["from_png"]},
    ],
    "links": [[1, 1, 0, 2, 0, "IMAGE"]],
}


def run_headless(base: Path, workflow: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO_ROOT / "server.py"), "--base-directory", str(base), "--run", str(workflow)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    install_plugins(tmp_path / "custom_nodes", ("fails_when_run.py", "example"))
    return tmp_path


def test_an_api_prompt_runs_and_prints_the_saved_files(base):
    workflow = base / "prompt.json"
    workflow.write_text(json.dumps(API_PROMPT))
    done = run_headless(base, workflow)
    assert done.returncode == 0, done.stderr
    saved = [Path(line) for line in done.stdout.splitlines()]
    assert saved == [base / "output" / "headless" / "run_00001_.png", base / "output" / "headless" / "run_00002_.png"]
    image = Image.open(saved[0])
    assert image.size == (8, 4) and image.getpixel((0, 0))[:3] == (255, 0, 0)
    assert json.loads(image.text["prompt"]) == API_PROMPT
    assert "nodes" in done.stderr  # the tqdm bar over the nodes


def png_with_chunks(path: Path, **chunks: str) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.new("RGB", (2, 2)).save(path, pnginfo=info)
    return path


def test_a_png_runs_its_workflow_chunk_and_embeds_it_again(base):
    source = png_with_chunks(base / "shared.png", workflow=json.dumps(UI_WORKFLOW), prompt=json.dumps({"bad": 1}))
    done = run_headless(base, source)
    assert done.returncode == 0, done.stderr
    (saved,) = [Path(line) for line in done.stdout.splitlines()]
    image = Image.open(saved)
    assert saved.name == "from_png_00001_.png" and image.size == (6, 6)
    assert json.loads(image.text["workflow"])["nodes"][0]["type"] == "EmptyImage"


def test_a_png_without_workflow_falls_back_to_its_prompt_chunk(base):
    torch_free = {"1": {"class_type": "ExampleSplitLines", "inputs": {"text": "a\nb"}},
                  "2": {"class_type": "ExampleShowText", "inputs": {"text": ["1", 0]}}}
    source = png_with_chunks(base / "api.png", prompt=json.dumps(torch_free))
    done = run_headless(base, source)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # ran, and no node saved a file
    assert "2/2" in done.stderr  # both nodes counted by the progress bar


@pytest.mark.parametrize("content, message", [
    ("{not json", "invalid JSON"),
    (json.dumps({"1": {"class_type": "NoSuchNode", "inputs": {}}}), "NoSuchNode does not exist"),
    (json.dumps({"1": {"class_type": "EmptyImage", "inputs": {"width": -1, "height": 4, "batch_size": 1, "color": 0}},
                 "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}),
     "node 1 (EmptyImage)"),
    (json.dumps({"1": {"class_type": "FixtureExplodes", "inputs": {"message": "kaboom"}}}), "RuntimeError: kaboom"),
])
def test_failures_exit_non_zero_with_a_readable_message(base, content, message):
    workflow = base / "broken.json"
    workflow.write_text(content)
    done = run_headless(base, workflow)
    assert done.returncode == 1
    assert "kiln: error:" in done.stderr and message in done.stderr
    assert done.stdout == ""


def test_a_missing_file_or_a_png_without_workflow_fails(base):
    assert "no such file" in run_headless(base, base / "nope.json").stderr
    done = run_headless(base, png_with_chunks(base / "plain.png"))
    assert done.returncode == 1 and "no 'workflow' or 'prompt' chunk" in done.stderr
