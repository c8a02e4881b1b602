"""Benchmark the editor's canvas rendering on big graphs in headless Chromium.

    .venv/bin/python tools/bench_editor.py [--nodes 1000 5000] [--frames 120]

Generates UI workflows (version 0.4) of N nodes laid out on a grid, each linked to its left
and upper neighbours (so about 2N links), opens each in the editor served by a fresh
``server.py``, and measures frames while panning at 100 % zoom, while zooming in and out
around the cursor, and with the whole graph in view (fit, the most drawing). Three numbers per
scenario: the time of ``Renderer.draw`` itself (the editor's render calls, measured in the page
with ``performance.now()``); the same frames drawn and then rasterised (``getImageData`` of one
pixel waits for Chromium's deferred 2D canvas to paint what was recorded, so this is the whole
cost of a frame on the CPU); and the interval between ``requestAnimationFrame`` callbacks (what
a user sees as frame rate; headless Chromium without a GPU rasterises on the CPU, so this is a
pessimistic bound on a desktop).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
GRID_DX = 320
GRID_DY = 220
# (type, input slots, output slots, widgets_values) of nodes the server has; links carry IMAGE.
NODE_KINDS = [
    ("ImageInvert", [("image", "IMAGE")], [("IMAGE", "IMAGE")], []),
    ("ImageBlend", [("image1", "IMAGE"), ("image2", "IMAGE")], [("IMAGE", "IMAGE")], [0.5, "normal"]),
    ("ImageScaleBy", [("image", "IMAGE")], [("IMAGE", "IMAGE")], ["nearest-exact", 1.0]),
]


def generate_workflow(count: int) -> dict:
    """A grid of ``count`` image nodes, each fed by its left neighbour (and the upper one for blends)."""
    columns = max(1, int(count ** 0.5))
    nodes, links = [], []
    for index in range(count):
        kind, inputs, outputs, values = NODE_KINDS[index % len(NODE_KINDS)]
        node_id = index + 1
        nodes.append({
            "id": node_id, "type": kind, "pos": [(index % columns) * GRID_DX, (index // columns) * GRID_DY],
            "size": [260, 120], "flags": {}, "order": index, "mode": 0,
            "inputs": [{"name": name, "type": slot_type, "link": None} for name, slot_type in inputs],
            "outputs": [{"name": name, "type": slot_type, "links": []} for name, slot_type in outputs],
            "properties": {"Node name for S&R": kind}, "widgets_values": list(values),
        })
    by_id = {node["id"]: node for node in nodes}

    def link(origin: int, target: int, slot: int) -> None:
        if slot >= len(by_id[target]["inputs"]):
            return
        link_id = len(links) + 1
        links.append([link_id, origin, 0, target, slot, "IMAGE"])
        by_id[origin]["outputs"][0]["links"].append(link_id)
        by_id[target]["inputs"][slot]["link"] = link_id

    for index in range(count):
        node_id = index + 1
        if index % columns:
            link(node_id - 1, node_id, 0)
        if index >= columns:
            link(node_id - columns, node_id, 1 if len(by_id[node_id]["inputs"]) > 1 else 0)
    return {"last_node_id": count, "last_link_id": len(links), "nodes": nodes, "links": links, "groups": [],
            "config": {}, "extra": {"ds": {"scale": 1, "offset": [0, 0]}}, "version": 0.4}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(base_dir: pathlib.Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "--port", str(port), "--base-directory", str(base_dir)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/object_info", timeout=5):
                return process, url
        except OSError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("server did not start")


# Runs in the page: parse, open in a new tab and draw once; milliseconds.
OPEN_JS = """
(text) => {
  const started = performance.now();
  kiln.app.openWorkflow(JSON.parse(text), "bench");
  kiln.app.renderer.draw();
  return performance.now() - started;
}
"""

# Runs in the page: drive the camera for `frames` animation frames and time them.
MEASURE_JS = """
async ([scenario, frames]) => {
  const app = kiln.app;
  const renderer = app.renderer;
  const camera = app.editor.camera;
  const rect = app.canvas.getBoundingClientRect();
  const centre = [rect.width / 2, rect.height / 2];
  if (scenario === "fit") app.fitView(); else { camera.scale = 1; camera.offset = [0, 0]; }
  const draws = [];
  const intervals = [];
  await new Promise(requestAnimationFrame);
  let last = performance.now();
  for (let frame = 0; frame < frames; frame++) {
    if (scenario === "pan") camera.panBy(-9, -5);
    else if (scenario === "zoom") camera.zoomAt(frame % 40 < 20 ? 0.93 : 1 / 0.93, centre);
    else camera.panBy(frame % 2 ? 1 : -1, 0);
    renderer.markDirty();
    const before = renderer.drawCount;
    await new Promise(requestAnimationFrame);
    await new Promise(requestAnimationFrame);
    const now = performance.now();
    intervals.push((now - last) / 2);
    last = now;
    if (renderer.drawCount > before) draws.push(renderer.frameTimes[renderer.frameTimes.length - 1]);
  }
  // The same motion again, each frame drawn and rasterised synchronously.
  if (scenario === "fit") app.fitView(); else { camera.scale = 1; camera.offset = [0, 0]; }
  renderer.stop();
  const rasterised = [];
  for (let frame = 0; frame < frames; frame++) {
    if (scenario === "pan") camera.panBy(-9, -5);
    else if (scenario === "zoom") camera.zoomAt(frame % 40 < 20 ? 0.93 : 1 / 0.93, centre);
    else camera.panBy(frame % 2 ? 1 : -1, 0);
    const started = performance.now();
    renderer.draw();
    renderer.ctx.getImageData(0, 0, 1, 1);
    rasterised.push(performance.now() - started);
  }
  renderer.start();
  return { draws, rasterised, intervals, scale: camera.scale };
}
"""


def summarise(values: list[float]) -> str:
    if not values:
        return "no frames drawn"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"mean {statistics.fmean(values):6.2f} ms, p95 {p95:6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as base_dir:
        process, url = start_server(pathlib.Path(base_dir))
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1600, "height": 900})
                page.goto(url + "/")
                page.evaluate("window.kiln.ready")
                for count in args.nodes:
                    workflow = generate_workflow(count)
                    # The JSON text crosses to the page first, so only parsing and opening are timed.
                    opened_ms = page.evaluate(OPEN_JS, json.dumps(workflow))
                    print(f"{count} nodes, {len(workflow['links'])} links: opened and first drawn in {opened_ms:.0f} ms")
                    for scenario in ("pan", "zoom", "fit"):
                        result = page.evaluate(MEASURE_JS, [scenario, args.frames])
                        print(f"  {scenario:5s} (scale {result['scale']:.2f}): draw {summarise(result['draws'])}; "
                              f"draw+raster {summarise(result['rasterised'])}; "
                              f"frame interval {summarise(result['intervals'])}")
                browser.close()
        finally:
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    main()
