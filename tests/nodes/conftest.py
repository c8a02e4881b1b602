"""Shared fixtures for the built-in node tests: a server's folders and a node context."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from engine.context import InterruptFlag, NodeContext, ProgressReporter, use_context
from engine.folders import ModelFolders


@pytest.fixture
def folders(tmp_path) -> ModelFolders:
    return ModelFolders(tmp_path / "kiln")


@pytest.fixture
def server_options() -> dict[str, Any]:
    return {"disable_metadata": False}


@pytest.fixture
def progress_reports() -> list[tuple]:
    return []


@pytest.fixture
def node_context(folders, server_options, progress_reports) -> Iterator[NodeContext]:
    """Run the test body as if the executor were running node "7" of prompt "p1"."""
    interrupt = InterruptFlag()
    reporter = ProgressReporter(lambda *report: progress_reports.append(report), interrupt)
    context = NodeContext(
        prompt_id="p1",
        node_id="7",
        display_node_id="7",
        reporter=reporter,
        interrupt=interrupt,
        resources={"folders": folders, "options": server_options},
    )
    with use_context(context):
        yield context
