"""Benchmark the graph engine: executor overhead per node, cached resubmission, start-up.

    .venv/bin/python tools/bench_engine.py [--nodes 2000] [--repeat 3]
    .venv/bin/python tools/bench_engine.py --startup      # seconds until GET /object_info answers

The graph is a seeded random DAG of trivial integer nodes (each adds a constant or an
earlier node's output to its predecessor's) with an output node every 100 nodes, and every
node is an ancestor of an output, so all of them run; the time measured is the engine's
own: ordering, signatures, cache, list mapping, context and events. Targets
(issue "Graph engine"): < 0.2 ms per node cold, < 50 ms cached. Wall and CPU time (of the
running thread) are both printed: on a shared, loaded machine the CPU time is the engine's
cost, the wall time also counts waiting for a core.
"""

from __future__ import annotations

import argparse
import copy
import pathlib
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.cache import KeepLastPrompt  # noqa: E402
from engine.context import InterruptFlag  # noqa: E402
from engine.executor import Executor  # noqa: E402
from engine.registry import NodeRegistry  # noqa: E402
from engine.validation import validate_prompt  # noqa: E402


class BenchSource:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -(2**31), "max": 2**31})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        return (value,)


class BenchAdd:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT",), "b": ("INT", {"default": 0, "min": -(2**31), "max": 2**31})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, a, b):
        return (a + b,)


class BenchOutput:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT",)}}

    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    def run(self, value):
        return {"ui": {"value": [value]}}


class CountingSink:
    """Drops events, counting the nodes that ran (``executing`` events)."""

    def __init__(self) -> None:
        self.nodes_run = 0

    def send(self, event: str, data: dict) -> None:
        if event == "executing":
            self.nodes_run += 1

    def send_preview(self, preview: object, meta: dict) -> None:
        pass


def make_registry() -> NodeRegistry:
    registry = NodeRegistry()
    registry.add_module({"BenchSource": BenchSource, "BenchAdd": BenchAdd, "BenchOutput": BenchOutput}, None, "bench", builtin=True)
    return registry


def make_prompt(nodes: int, seed: int = 0) -> dict:
    """A seeded random DAG in which every node runs: a chain through all the adders (input
    ``a``), a random earlier adder on input ``b`` for a third of them, an output every 100."""
    rng = random.Random(seed)
    prompt: dict[str, dict] = {"0": {"class_type": "BenchSource", "inputs": {"value": 1}}}
    adders = ["0"]
    for index in range(1, nodes):
        node_id = str(index)
        if index % 100 == 99 or index == nodes - 1:
            prompt[node_id] = {"class_type": "BenchOutput", "inputs": {"value": [adders[-1], 0]}}
            continue
        b = [rng.choice(adders), 0] if rng.random() < 1 / 3 else index % 7
        prompt[node_id] = {"class_type": "BenchAdd", "inputs": {"a": [adders[-1], 0], "b": b}}
        adders.append(node_id)
    return prompt


@dataclass
class ExecutorTimes:
    nodes: int
    outputs: int
    nodes_run: int
    validation_ms: float
    cold_ms: float
    cached_ms: float
    cold_cpu_ms: float
    cached_cpu_ms: float

    @property
    def cold_ms_per_node(self) -> float:
        return self.cold_ms / self.nodes

    @property
    def cold_cpu_ms_per_node(self) -> float:
        return self.cold_cpu_ms / self.nodes


def measure_executor(nodes: int, repeat: int) -> ExecutorTimes:
    """Best of ``repeat``: a cold run on a fresh executor, then the same prompt again."""
    registry = make_registry()
    prompt = make_prompt(nodes)
    to_validate = copy.deepcopy(prompt)
    started = time.perf_counter()
    validation = validate_prompt(registry, to_validate)
    validation_ms = (time.perf_counter() - started) * 1000
    assert validation.ok, validation.error
    cold_times, cached_times, cold_cpu, cached_cpu = [], [], [], []
    for _ in range(repeat):
        executor = Executor(registry, KeepLastPrompt(), {})
        cold_prompt, cached_prompt = copy.deepcopy(prompt), copy.deepcopy(prompt)
        sink = CountingSink()
        started, started_cpu = time.perf_counter(), time.thread_time()
        result = executor.execute(cold_prompt, "cold", {}, validation.outputs, sink, InterruptFlag())
        cold_times.append(time.perf_counter() - started)
        cold_cpu.append(time.thread_time() - started_cpu)
        assert result.status_str == "success", result.messages[-1]
        started, started_cpu = time.perf_counter(), time.thread_time()
        result = executor.execute(cached_prompt, "cached", {}, validation.outputs, CountingSink(), InterruptFlag())
        cached_times.append(time.perf_counter() - started)
        cached_cpu.append(time.thread_time() - started_cpu)
        assert result.status_str == "success", result.messages[-1]
    return ExecutorTimes(
        nodes, len(validation.outputs), sink.nodes_run, validation_ms,
        min(cold_times) * 1000, min(cached_times) * 1000, min(cold_cpu) * 1000, min(cached_cpu) * 1000,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bench_startup(timeout: float, server_script: pathlib.Path = ROOT / "server.py") -> float:
    """Start ``server_script`` on a free port; seconds until GET /object_info answers 200."""
    port = free_port()
    with tempfile.TemporaryDirectory() as base:
        command = [sys.executable, str(server_script), "--port", str(port), "--base-directory", base]
        started = time.perf_counter()
        server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            url = f"http://127.0.0.1:{port}/object_info"
            while time.perf_counter() - started < timeout:
                if server.poll() is not None:
                    raise SystemExit(f"server.py exited with {server.returncode}: {server.stderr.read().decode()[-2000:]}")
                try:
                    with urllib.request.urlopen(url, timeout=1) as response:
                        if response.status == 200:
                            return time.perf_counter() - started
                except (urllib.error.URLError, ConnectionError, OSError):
                    pass
                time.sleep(0.02)
            raise SystemExit(f"/object_info did not answer within {timeout} s")
        finally:
            server.terminate()
            try:
                server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--startup", action="store_true", help="measure server.py start-up instead")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--server", type=pathlib.Path, default=ROOT / "server.py", help="script to start with --startup")
    args = parser.parse_args()
    if args.startup:
        seconds = bench_startup(args.timeout, args.server)
        print(f"startup: /object_info answered 200 after {seconds:.2f} s (target < 1.5)")
    else:
        times = measure_executor(args.nodes, args.repeat)
        print(f"graph: {times.nodes} nodes ({times.nodes_run} ran), {times.outputs} outputs; validation {times.validation_ms:.1f} ms")
        print(f"cold execution: {times.cold_ms:.1f} ms = {times.cold_ms_per_node:.3f} ms per node (target < 0.2);"
              f" CPU {times.cold_cpu_ms_per_node:.3f} ms per node")
        print(f"cached resubmission: {times.cached_ms:.1f} ms (target < 50); CPU {times.cached_cpu_ms:.1f} ms")


if __name__ == "__main__":
    main()
