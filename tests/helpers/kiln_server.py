"""Test helpers: a real ``python server.py`` subprocess and a websocket client.

``kiln_server`` starts one server per test session on a free port, with a temporary
``--base-directory`` whose ``custom_nodes/`` holds the example plugin and the fixture
plugins of ``tests/fixtures/plugins`` (broken ones included: the server must start anyway),
and yields its URL. ``start_kiln`` starts further servers with other flags (auth, CORS).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_PLUGINS = REPO_ROOT / "tests" / "fixtures" / "plugins"
EXAMPLE_PLUGIN = REPO_ROOT / "custom_nodes" / "example"
DEFAULT_PLUGINS = ("example", "raises_on_import", "bad_input_types.py", "overrides_builtin.py",
                   "hangs_on_import.py", "compat_user")
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc/<pid>/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def install_plugins(custom_nodes: Path, names: tuple[str, ...]) -> None:
    """Copy plugins by name: ``example`` is the shipped one, the rest are fixtures."""
    custom_nodes.mkdir(parents=True, exist_ok=True)
    for name in names:
        source = EXAMPLE_PLUGIN if name == "example" else FIXTURE_PLUGINS / name
        target = custom_nodes / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)


@dataclass
class KilnProcess:
    """A running ``server.py``; ``url`` has no trailing slash."""

    base_dir: Path
    port: int
    process: subprocess.Popen
    log_path: Path
    started_at: float
    ready_after_s: float = 0.0
    ready_cpu_s: float = 0.0  # CPU time the server had used when it first answered
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, path: str = "/object_info") -> None:
        deadline = self.started_at + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                request = urllib.request.Request(self.url + path, headers=self.headers)
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        self.ready_after_s = time.monotonic() - self.started_at
                        self.ready_cpu_s = process_cpu_seconds(self.process.pid)
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.02)
        raise RuntimeError(f"server did not answer {path} within {START_TIMEOUT_S} s:\n{self.log()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def launch(base_dir: Path, *args: str, plugins: tuple[str, ...] = (), headers: dict | None = None,
           wait: bool = True) -> KilnProcess:
    """Start ``python server.py --base-directory base_dir --port <free> *args``."""
    install_plugins(base_dir / "custom_nodes", plugins)
    port = free_port()
    log_path = base_dir / "server.log"
    log_file = open(log_path, "wb")
    command = [sys.executable, str(REPO_ROOT / "server.py"), "--base-directory", str(base_dir),
               "--port", str(port), *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    log_file.close()
    kiln = KilnProcess(base_dir, port, process, log_path, time.monotonic(), headers=headers or {})
    if wait:
        try:
            kiln.wait_ready()
        except Exception:
            kiln.stop()
            raise
    return kiln


# ---- async helpers (plain pytest: each test drives its own event loop) ------------------------

def run_async(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


class WsClient:
    """A websocket client that records every frame it receives."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.messages: list[dict] = []
        self.binary: list[bytes] = []

    async def next_message(self, timeout: float) -> dict | bytes:
        import aiohttp

        frame = await self.socket.receive(timeout=timeout)
        if frame.type == aiohttp.WSMsgType.TEXT:
            message = json.loads(frame.data)
            self.messages.append(message)
            return message
        if frame.type == aiohttp.WSMsgType.BINARY:
            self.binary.append(frame.data)
            return frame.data
        raise ConnectionError(f"websocket closed: {frame.type}")

    async def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 30.0) -> dict:
        """Read frames until a JSON message satisfies ``predicate``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no matching websocket message; got {[m['type'] for m in self.messages]}")
            message = await self.next_message(remaining)
            if isinstance(message, dict) and predicate(message):
                return message

    async def wait_done(self, prompt_id: str, timeout: float = 60.0) -> dict:
        """Until the legacy end-of-prompt signal ``executing {"node": null, "prompt_id"}``."""
        return await self.wait_for(lambda m: m["type"] == "executing" and m["data"].get("node") is None
                                   and m["data"].get("prompt_id") == prompt_id, timeout)

    def events(self, prompt_id: str) -> list[dict]:
        return [m for m in self.messages if isinstance(m.get("data"), dict) and m["data"].get("prompt_id") == prompt_id]


async def ws_connect(session: Any, url: str, client_id: str | None = None, **kwargs: Any) -> WsClient:
    """Open ``/ws`` (``clientId`` query when given) with an aiohttp session."""
    target = url.replace("http://", "ws://") + "/ws" + (f"?clientId={client_id}" if client_id else "")
    return WsClient(await session.ws_connect(target, **kwargs))
