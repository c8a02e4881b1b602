"""Shared fixtures: a real ``python server.py`` subprocess (see ``tests/helpers/kiln_server.py``).

``kiln_server`` starts one server per test session on a free port, with a temporary
``--base-directory`` whose ``custom_nodes/`` holds the example plugin and the fixture
plugins of ``tests/fixtures/plugins`` (broken ones included: the server must start anyway),
and yields its URL. ``start_kiln`` starts further servers with other flags (auth, CORS).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

# Before torch loads: OpenMP threads that spin while waiting starve each other on a shared 2-core
# machine (tests in-process ran 5-8x slower beside other work); server.py sets the same.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

from tests.helpers.kiln_server import DEFAULT_PLUGINS, KilnProcess, launch


@pytest.fixture(scope="session")
def kiln_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KilnProcess]:
    base_dir = tmp_path_factory.mktemp("kiln-base")
    kiln = launch(base_dir, "--plugin-import-timeout", "1", plugins=DEFAULT_PLUGINS)
    yield kiln
    kiln.stop()


@pytest.fixture(scope="session")
def kiln_server(kiln_process: KilnProcess) -> str:
    """The URL of the session's Kiln server (example + fixture plugins installed)."""
    return kiln_process.url


@pytest.fixture
def start_kiln(tmp_path: Path) -> Iterator[Callable[..., KilnProcess]]:
    """Factory for extra servers: ``start_kiln("--auth-token", "t", plugins=(...))``."""
    started: list[KilnProcess] = []

    def start(*args: str, plugins: tuple[str, ...] = (), headers: dict | None = None) -> KilnProcess:
        base_dir = tmp_path / f"base{len(started)}"
        base_dir.mkdir()
        kiln = launch(base_dir, *args, plugins=plugins, headers=headers)
        started.append(kiln)
        return kiln

    yield start
    for kiln in started:
        kiln.stop()


