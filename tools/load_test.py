"""Load test: many websocket clients queueing prompts at once against one Kiln server.

    python tools/load_test.py                          # starts its own server: 10 clients x 20 prompts
    python tools/load_test.py --url http://127.0.0.1:8188 --pid 1234 --clients 4 --prompts 50

Each client opens ``/ws?clientId=<its id>``, then all clients post their prompts at the same
moment (small graphs: EmptyImage 8x8 with a colour unique to the prompt → ImageInvert →
PreviewImage). While they run, a prober times ``GET /object_info``. The tool checks that

* every prompt completes (``execution_success`` and the final ``executing {node: null}``),
* each client receives the events of its own prompts and of no one else's,
* ``/queue`` ends empty and ``/history`` holds every prompt, successful, with its image,

and prints throughput, ``/object_info`` latency (p50/p99/max) and the server's peak RSS
(``VmHWM``; needs the server's pid: known when the tool starts the server, else ``--pid``).
Exit status 1 when a check fails. ``tests/reliability/test_load.py`` runs a small version.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def small_prompt(color: int) -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": color}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }


@dataclass
class ClientRecord:
    client_id: str
    prompt_ids: list[str] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    done: set[str] = field(default_factory=set)


@dataclass
class LoadReport:
    clients: int
    prompts_per_client: int
    seconds: float
    object_info_ms: list[float]
    peak_rss_kib: int | None
    failures: list[str]

    @property
    def total(self) -> int:
        return self.clients * self.prompts_per_client

    def lines(self) -> list[str]:
        latencies = sorted(self.object_info_ms)
        lines = [f"{self.clients} clients x {self.prompts_per_client} prompts = {self.total} prompts in "
                 f"{self.seconds:.2f} s: {self.total / self.seconds:.1f} prompts/s"]
        if latencies:
            p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
            lines.append(f"/object_info while running: {len(latencies)} requests, p50 {statistics.median(latencies):.1f} ms, "
                         f"p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms")
        if self.peak_rss_kib is not None:
            lines.append(f"server peak RSS (VmHWM): {self.peak_rss_kib / 1024:.0f} MiB")
        lines.append("load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()) + f" on {os.cpu_count()} CPUs")
        lines.append("checks: " + ("all passed" if not self.failures else f"{len(self.failures)} FAILED"))
        lines.extend("  - " + failure for failure in self.failures[:20])
        return lines


def peak_rss_kib(pid: int | None) -> int | None:
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


async def _listen(socket, record: ClientRecord, expected: int, finished: asyncio.Event) -> None:
    import aiohttp

    async for message in socket:
        if message.type != aiohttp.WSMsgType.TEXT:
            continue
        event = json.loads(message.data)
        data = event.get("data")
        if isinstance(data, dict) and "prompt_id" in data:
            record.events.append(event)
            if event["type"] == "executing" and data.get("node") is None:
                record.done.add(data["prompt_id"])
                if len(record.done) >= expected:
                    finished.set()


async def _probe(session, url: str, stop: asyncio.Event, samples: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        async with session.get(url + "/object_info") as response:
            await response.read()
            if response.status == 200:
                samples.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.05)


def _check(records: list[ClientRecord], queue: dict, history: dict) -> list[str]:
    failures = []
    owner = {pid: record.client_id for record in records for pid in record.prompt_ids}
    for record in records:
        own = set(record.prompt_ids)
        foreign = {e["data"]["prompt_id"] for e in record.events} - own
        if foreign:
            failures.append(f"client {record.client_id[:8]} received events of {len(foreign)} other prompts")
        for pid in record.prompt_ids:
            kinds = [e["type"] for e in record.events if e["data"]["prompt_id"] == pid]
            for needed in ("execution_start", "executed", "execution_success"):
                if needed not in kinds:
                    failures.append(f"prompt {pid[:8]} of {record.client_id[:8]}: no {needed} event")
            if pid not in record.done:
                failures.append(f"prompt {pid[:8]} of {record.client_id[:8]}: never finished")
    if queue != {"queue_running": [], "queue_pending": []}:
        failures.append(f"/queue not empty at the end: {len(queue['queue_running'])} running, "
                        f"{len(queue['queue_pending'])} pending")
    for pid, client_id in owner.items():
        entry = history.get(pid)
        if entry is None:
            failures.append(f"prompt {pid[:8]} missing from /history")
        elif entry["status"]["status_str"] != "success" or not entry["outputs"].get("3", {}).get("images"):
            failures.append(f"prompt {pid[:8]} history: {entry['status']['status_str']}, outputs {entry['outputs']}")
        elif entry["prompt"][3].get("client_id") != client_id:
            failures.append(f"prompt {pid[:8]} history names client {entry['prompt'][3].get('client_id')}")
    return failures


async def run_load(url: str, clients: int, prompts_per_client: int, pid: int | None = None,
                   timeout: float = 600.0) -> LoadReport:
    """Run the load against ``url``; the report lists every failed check."""
    import aiohttp

    records = [ClientRecord(uuid.uuid4().hex) for _ in range(clients)]
    finished = [asyncio.Event() for _ in records]
    ws_url = url.replace("http://", "ws://").replace("https://", "wss://")
    base_color = int(uuid.uuid4().hex[:5], 16) << 4  # colours (so cache signatures) unique to this run
    timeout_settings = aiohttp.ClientTimeout(total=None, sock_read=timeout)
    async with aiohttp.ClientSession(timeout=timeout_settings) as session:
        sockets = [await session.ws_connect(f"{ws_url}/ws?clientId={record.client_id}") for record in records]
        listeners = [asyncio.create_task(_listen(socket, record, prompts_per_client, done))
                     for socket, record, done in zip(sockets, records, finished)]
        stop_probe = asyncio.Event()
        latencies: list[float] = []
        probe = asyncio.create_task(_probe(session, url, stop_probe, latencies))

        async def submit(index: int, record: ClientRecord) -> None:
            for n in range(prompts_per_client):
                color = base_color + index * prompts_per_client + n
                body = {"prompt": small_prompt(color), "client_id": record.client_id}
                async with session.post(url + "/prompt", json=body) as response:
                    answer = await response.json()
                    if response.status != 200:
                        raise RuntimeError(f"prompt refused: {answer}")
                    record.prompt_ids.append(answer["prompt_id"])

        started = time.perf_counter()
        await asyncio.gather(*(submit(i, record) for i, record in enumerate(records)))
        try:
            await asyncio.wait_for(asyncio.gather(*(done.wait() for done in finished)), timeout)
        except asyncio.TimeoutError:
            pass  # reported below as prompts that never finished
        seconds = time.perf_counter() - started
        stop_probe.set()
        await probe
        async with session.get(url + "/queue") as response:
            queue = await response.json()
        async with session.get(url + "/history") as response:
            history = await response.json()
        for socket in sockets:
            await socket.close()
        for listener in listeners:
            listener.cancel()
    failures = _check(records, queue, history)
    return LoadReport(clients, prompts_per_client, seconds, latencies, peak_rss_kib(pid), failures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help="a running server; default: start one on a free port")
    parser.add_argument("--pid", type=int, default=None, help="the running server's pid, for its peak RSS")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--prompts", type=int, default=20, help="prompts per client")
    args = parser.parse_args(argv)
    kiln = None
    url, pid = args.url, args.pid
    if url is None:
        import tempfile

        from tests.helpers.kiln_server import launch

        kiln = launch(Path(tempfile.mkdtemp(prefix="kiln-load-")), "--preview-method", "none")
        url, pid = kiln.url, kiln.process.pid
    try:
        report = asyncio.run(run_load(url.rstrip("/"), args.clients, args.prompts, pid))
    finally:
        if kiln is not None:
            kiln.stop()
    print("\n".join(report.lines()))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
