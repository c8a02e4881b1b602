"""Runs the editor's DOM-free tests with ``node --test``: ``tests/web/model/*.test.mjs`` (the
graph document, workflow formats, widgets_values, API prompt conversion) and
``tests/web/view/*.test.mjs`` (camera and node layout).

Those layers are plain ES modules without DOM, so Node.js runs their tests directly; this
wrapper lets ``make test`` include them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_TEST_DIRS = (HERE / "model", HERE / "view")


def test_model_and_view_layers_pass_node_test() -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js (20+) is required for the editor's model tests"
    tests = sorted(str(path) for folder in NODE_TEST_DIRS for path in folder.glob("*.test.mjs"))
    assert len(tests) >= 8, f"expected the model and view test files, found {tests}"
    result = subprocess.run([node, "--test", *tests], capture_output=True, text=True, timeout=120)
    summary = "\n".join(line for line in result.stdout.splitlines() if line.startswith(("# pass", "# fail", "not ok")))
    assert result.returncode == 0, f"node --test failed:\n{summary}\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    assert "# fail 0" in result.stdout, summary
