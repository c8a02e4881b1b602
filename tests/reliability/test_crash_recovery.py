"""SIGKILL in the middle of a run: the durable queue and history survive (engine/queue.py).

Ten prompts (EmptyImage → FixtureSlowPassImage → SaveImage, each with its own tag) are
queued; the server is killed with SIGKILL while one of them is inside the slow node, and
started again on the same folders. Then: nothing is lost or duplicated (every prompt is in
exactly one of history, running, pending), the pending order is kept, the interrupted prompt
is re-queued (``--on-interrupted requeue``) or written to history as failed (``fail``), every
prompt ends up in the history, and every PNG the server lists (``/internal/files/output``,
history outputs) is a whole image. The requeue case kills a second time, while SaveImage
writes, to check that a write cut short leaves no file that is listed.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from tests.helpers.kiln_server import KilnProcess, launch, run_async
from tests.reliability.kiln_http import KilnHttp, error_message

PROMPTS = 10
SLOW_S = 0.3
IMAGE_SIDE = 1024  # large enough that writing the PNG takes a noticeable time


def slow_prompt(index: int, tag: str) -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": IMAGE_SIDE, "height": IMAGE_SIDE, "batch_size": 1,
                                                     "color": index}},
        "2": {"class_type": "FixtureSlowPassImage", "inputs": {"image": ["1", 0], "seconds": SLOW_S, "tag": tag}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": f"crash_{index:02}"}},
    }


def start(base: Path, on_interrupted: str) -> KilnProcess:
    return launch(base, "--on-interrupted", on_interrupted, "--preview-method", "none", plugins=("slow_node.py",))


def kill_when(kiln: KilnProcess, client_id: str, predicate) -> str:
    """Watch ``client_id``'s events; SIGKILL the server at the first ``progress`` that
    ``predicate(data, seconds_since_previous_event)`` accepts; return that prompt's id."""

    async def watch() -> str:
        async with aiohttp.ClientSession() as session:
            socket = await session.ws_connect(kiln.url.replace("http", "ws") + f"/ws?clientId={client_id}")
            while True:
                message = await socket.receive(timeout=120)
                event = json.loads(message.data)
                if event["type"] == "progress" and predicate(event["data"]):
                    kiln.process.kill()
                    kiln.process.wait(10)
                    return event["data"]["prompt_id"]

    return run_async(watch())


def queue_state(http: KilnHttp) -> tuple[list[str], list[str], dict]:
    queue = http.get("/queue").json()
    running = [item[1] for item in queue["queue_running"]]
    pending = [item[1] for item in queue["queue_pending"]]
    return running, pending, http.get("/history").json()


def assert_nothing_lost(ids: list[str], running: list[str], pending: list[str], history: dict) -> None:
    places = running + pending + [pid for pid in ids if pid in history]
    assert sorted(places) == sorted(ids), "every prompt is in exactly one place"
    still_queued = running + pending
    assert still_queued == [pid for pid in ids if pid in still_queued], "the queue order is kept"


def assert_listed_files_are_whole(http: KilnHttp, history: dict) -> None:
    listed = http.get("/internal/files/output").json()
    referenced = [image["filename"] for entry in history.values()
                  for output in entry["outputs"].values() for image in output.get("images", [])]
    assert set(referenced) <= set(listed)
    for name in listed:
        assert not name.startswith(".") and name.endswith(".png"), f"a temporary file is listed: {name}"
        reply = http.get("/view", filename=name)
        assert reply.status == 200, name
        with Image.open(io.BytesIO(reply.body)) as image:
            image.load()  # raises on a truncated file
            assert image.size == (IMAGE_SIDE, IMAGE_SIDE)


@pytest.mark.parametrize("on_interrupted", ["requeue", "fail"])
def test_a_killed_server_keeps_its_queue_and_history(tmp_path, on_interrupted):
    kiln = start(tmp_path, on_interrupted)
    http = KilnHttp(kiln.url)
    client_id = uuid.uuid4().hex
    ids = [http.queue_prompt(slow_prompt(i, uuid.uuid4().hex), client_id=client_id) for i in range(PROMPTS)]
    try:
        # Mid-sleep in the third prompt: two are done, one is running, seven are pending.
        victim = kill_when(kiln, client_id, lambda data: data["prompt_id"] == ids[2] and data["value"] == 3)
    finally:
        kiln.stop()
    assert victim == ids[2] and kiln.process.returncode == -9

    kiln = start(tmp_path, on_interrupted)
    http = KilnHttp(kiln.url)
    try:
        running, pending, history = queue_state(http)
        assert_nothing_lost(ids, running, pending, history)
        assert set(ids[:2]) <= history.keys()
        assert set(ids[3:]) <= set(running + pending), "the pending prompts survived"
        if on_interrupted == "requeue":
            assert victim in running + pending and victim not in history
        else:
            assert victim not in running + pending
            error = error_message(history[victim])
            assert history[victim]["status"]["status_str"] == "error"
            assert error["exception_type"] == "ServerStopped" and "did not finish" in error["exception_message"]

        if on_interrupted == "requeue":
            # Second kill: right after the slow node's last step, while SaveImage encodes and writes.
            second = kill_when(kiln, client_id, lambda data: data["value"] == data["max"] and data["prompt_id"] != victim
                               and not time.sleep(0.05))
            kiln.stop()
            kiln = start(tmp_path, on_interrupted)
            http = KilnHttp(kiln.url)
            assert second in sum(queue_state(http)[:2], []) + list(http.get("/history").json())

        final = http.wait_for_history(ids, timeout=120)
        expected_errors = {victim} if on_interrupted == "fail" else set()
        assert {pid for pid, entry in final.items() if entry["status"]["status_str"] == "error"} == expected_errors
        for pid in set(ids) - expected_errors:
            assert final[pid]["outputs"]["3"]["images"], "each finished prompt lists its PNG"
        assert http.get("/queue").json() == {"queue_running": [], "queue_pending": []}
        assert_listed_files_are_whole(http, final)
    finally:
        kiln.stop()
