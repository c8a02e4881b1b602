"""engine.queue: ComfyUI's PromptQueue semantics, made durable in SQLite (§1.3, §1.4, §6.11)."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.queue import INTERRUPTED_MESSAGE, PromptQueue

PROMPT = {"9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x", "images": ["8", 0]}}}


def item(number: float, prompt_id: str, **extra) -> tuple:
    return (number, prompt_id, PROMPT, {"client_id": "c1", **extra}, ["9"])


@pytest.fixture
def queue() -> PromptQueue:
    return PromptQueue(None)


def ids(items: list[list]) -> list[str]:
    return [entry[1] for entry in items]


def test_items_are_comfyui_five_element_lists(queue: PromptQueue):
    queue.put(item(0, "a"))
    assert queue.pending() == [[0, "a", PROMPT, {"client_id": "c1"}, ["9"]]]
    assert queue.running() == []


def test_lowest_number_runs_first_and_ties_keep_arrival_order(queue: PromptQueue):
    for number, prompt_id in [(3, "c"), (1, "a"), (2, "b1"), (2, "b2"), (-4, "front")]:
        queue.put(item(number, prompt_id))
    assert ids(queue.pending()) == ["front", "a", "b1", "b2", "c"]
    taken = [queue.get(timeout=0)[1] for _ in range(5)]
    assert taken == ["front", "a", "b1", "b2", "c"]


def test_get_marks_running_and_task_done_writes_history(queue: PromptQueue):
    queue.put(item(0, "a"))
    number, prompt_id, prompt, extra_data, outputs = queue.get(timeout=1)
    assert (number, prompt_id, prompt, extra_data, outputs) == (0, "a", PROMPT, {"client_id": "c1"}, ["9"])
    assert ids(queue.running()) == ["a"] and queue.pending() == []
    assert queue.remaining() == 1
    ui = {"9": {"images": [{"filename": "x_00001_.png", "subfolder": "", "type": "output"}]}}
    meta = {"9": {"node_id": "9", "display_node": "9", "parent_node": None, "real_node_id": "9"}}
    messages = [["execution_start", {"prompt_id": "a", "timestamp": 1}]]
    queue.task_done("a", {"status_str": "success", "completed": True, "messages": messages, "outputs": ui, "meta": meta})
    assert queue.remaining() == 0 and queue.running() == []
    assert queue.history.get_one("a") == {
        "a": {
            "prompt": [0, "a", PROMPT, {"client_id": "c1"}, ["9"]],
            "outputs": ui,
            "status": {"status_str": "success", "completed": True, "messages": messages},
            "meta": meta,
        }
    }


def test_task_done_accepts_an_execution_result_object_and_keywords(queue: PromptQueue):
    @dataclass
    class ExecutionResult:
        status_str: str = "error"
        completed: bool = False
        messages: list = field(default_factory=lambda: [["execution_error", {"prompt_id": "a"}]])
        outputs: dict = field(default_factory=dict)
        meta: dict = field(default_factory=dict)

    queue.put(item(0, "a"))
    queue.put(item(1, "b"))
    queue.get(timeout=0)
    queue.task_done("a", ExecutionResult())
    assert queue.history.get_one("a")["a"]["status"]["status_str"] == "error"
    queue.get(timeout=0)
    queue.task_done("b", status_str="success", completed=True, messages=[], outputs={"9": {"text": ["hi"]}}, meta={})
    assert queue.history.get_one("b")["b"]["outputs"] == {"9": {"text": ["hi"]}}


def test_task_done_for_an_unknown_prompt_raises(queue: PromptQueue):
    with pytest.raises(KeyError):
        queue.task_done("ghost", {"status_str": "success"})


def test_get_times_out_with_none_and_blocks_until_put(queue: PromptQueue):
    started = time.monotonic()
    assert queue.get(timeout=0.05) is None
    assert time.monotonic() - started >= 0.04
    threading.Timer(0.05, lambda: queue.put(item(0, "late"))).start()
    assert queue.get(timeout=5)[1] == "late"


def test_pause_holds_items_until_resume(queue: PromptQueue):
    queue.put(item(0, "a"))
    queue.pause()
    assert queue.paused
    assert queue.get(timeout=0.05) is None
    threading.Timer(0.05, queue.resume).start()
    assert queue.get(timeout=5)[1] == "a"
    assert not queue.paused


def test_delete_removes_pending_only(queue: PromptQueue):
    for number, prompt_id in enumerate(["a", "b", "c"]):
        queue.put(item(number, prompt_id))
    queue.get(timeout=0)
    queue.delete(["a", "b", "unknown"])
    assert ids(queue.running()) == ["a"]
    assert ids(queue.pending()) == ["c"]


def test_wipe_clears_pending_and_keeps_running(queue: PromptQueue):
    for number, prompt_id in enumerate(["a", "b", "c"]):
        queue.put(item(number, prompt_id))
    queue.get(timeout=0)
    queue.wipe()
    assert queue.pending() == [] and ids(queue.running()) == ["a"]
    assert queue.remaining() == 1


def test_move_front_and_back(queue: PromptQueue):
    for number, prompt_id in enumerate(["a", "b", "c", "d"]):
        queue.put(item(number, prompt_id))
    queue.move("c", "front")
    assert ids(queue.pending()) == ["c", "a", "b", "d"]
    queue.move("a", "back")
    assert ids(queue.pending()) == ["c", "b", "d", "a"]
    numbers = [entry[0] for entry in queue.pending()]
    assert numbers == sorted(numbers)
    with pytest.raises(KeyError):
        queue.move("nope", "front")
    with pytest.raises(ValueError):
        queue.move("a", "sideways")


def test_duplicate_prompt_id_is_refused(queue: PromptQueue):
    queue.put(item(0, "a"))
    with pytest.raises(ValueError):
        queue.put(item(1, "a"))


def test_credentials_are_used_but_never_shown_or_stored(tmp_path: Path):
    db = tmp_path / "queue.sqlite"
    queue = PromptQueue(db)
    queue.put(item(0, "a", auth_token_comfy_org="secret-token", api_key_comfy_org="secret-key"))
    assert queue.pending()[0][3] == {"client_id": "c1"}
    assert b"secret" not in b"".join(path.read_bytes() for path in tmp_path.iterdir())
    extra_data = queue.get(timeout=0)[3]
    assert extra_data["auth_token_comfy_org"] == "secret-token"
    assert extra_data["api_key_comfy_org"] == "secret-key"
    assert queue.running()[0][3] == {"client_id": "c1"}
    queue.task_done("a", {"status_str": "success", "completed": True})
    assert queue.history.get_one("a")["a"]["prompt"][3] == {"client_id": "c1"}


def test_listeners_hear_every_change(queue: PromptQueue):
    heard: list[tuple[str, int]] = []
    queue.add_listener(lambda change: heard.append((change, queue.remaining())))
    queue.put(item(0, "a"))
    queue.put(item(1, "b"))
    queue.get(timeout=0)
    queue.delete(["b"])
    queue.task_done("a", {"status_str": "success", "completed": True})
    queue.wipe()
    assert heard == [("put", 1), ("put", 2), ("get", 2), ("delete", 1), ("task_done", 0), ("wipe", 0)]


def test_a_failing_listener_does_not_break_the_queue(queue: PromptQueue):
    def broken(change: str) -> None:
        raise RuntimeError("listener bug")

    queue.add_listener(broken)
    queue.put(item(0, "a"))
    assert queue.remaining() == 1


def test_next_number_increases_and_survives_reopen(tmp_path: Path):
    db = tmp_path / "queue.sqlite"
    first = PromptQueue(db)
    numbers = [first.next_number() for _ in range(3)]
    assert numbers == [numbers[0], numbers[0] + 1, numbers[0] + 2]
    first.put(item(100, "high"))
    first.close()
    reopened = PromptQueue(db)
    assert reopened.next_number() == 101


def test_reopen_finds_pending_items_and_history(tmp_path: Path):
    db = tmp_path / "user" / "kiln.sqlite"
    queue = PromptQueue(db)
    for number, prompt_id in enumerate(["done", "p1", "p2"]):
        queue.put(item(number, prompt_id))
    queue.get(timeout=0)
    queue.task_done("done", {"status_str": "success", "completed": True, "outputs": {"9": {"images": []}}})
    queue.move("p2", "front")
    queue.close()

    reopened = PromptQueue(db)
    assert ids(reopened.pending()) == ["p2", "p1"]
    assert reopened.history.get_one("done")["done"]["outputs"] == {"9": {"images": []}}
    assert reopened.get(timeout=0)[1] == "p2"


def test_interrupted_running_item_is_requeued_first_on_reopen(tmp_path: Path):
    db = tmp_path / "kiln.sqlite"
    queue = PromptQueue(db)
    queue.put(item(0, "crashed"))
    queue.put(item(1, "waiting"))
    queue.get(timeout=0)
    queue.close()  # the process dies here, without task_done

    reopened = PromptQueue(db, on_interrupted="requeue")
    assert reopened.running() == []
    assert ids(reopened.pending()) == ["crashed", "waiting"]
    assert reopened.history.get_one("crashed") == {}


def test_interrupted_running_item_fails_into_history_on_reopen(tmp_path: Path):
    db = tmp_path / "kiln.sqlite"
    queue = PromptQueue(db)
    queue.put(item(0, "crashed"))
    queue.put(item(1, "waiting"))
    queue.get(timeout=0)
    queue.close()

    reopened = PromptQueue(db, on_interrupted="fail")
    assert ids(reopened.pending()) == ["waiting"] and reopened.running() == []
    entry = reopened.history.get_one("crashed")["crashed"]
    assert entry["prompt"] == [0, "crashed", PROMPT, {"client_id": "c1"}, ["9"]]
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    (event, data), = entry["status"]["messages"]
    assert event == "execution_error"
    assert data["prompt_id"] == "crashed" and data["exception_message"] == INTERRUPTED_MESSAGE


def test_put_is_on_disk_before_it_returns(tmp_path: Path):
    db = tmp_path / "kiln.sqlite"
    queue = PromptQueue(db)
    queue.put(item(0, "a"))
    with sqlite3.connect(db) as reader:
        assert reader.execute("SELECT prompt_id, state FROM queue").fetchall() == [("a", "pending")]
    queue.get(timeout=0)
    queue.task_done("a", {"status_str": "success", "completed": True})
    with sqlite3.connect(db) as reader:
        assert reader.execute("SELECT count(*) FROM queue").fetchone() == (0,)
        assert reader.execute("SELECT prompt_id FROM history").fetchall() == [("a",)]


def test_unknown_interrupt_policy_is_refused():
    with pytest.raises(ValueError):
        PromptQueue(None, on_interrupted="ignore")


def test_concurrent_producers_and_one_worker(tmp_path: Path):
    queue = PromptQueue(tmp_path / "kiln.sqlite")
    producers, per_producer = 4, 15
    done: list[str] = []

    def produce(index: int) -> None:
        for n in range(per_producer):
            queue.put(item(queue.next_number(), f"p{index}-{n}"))

    def work() -> None:
        while len(done) < producers * per_producer:
            taken = queue.get(timeout=5)
            assert taken is not None
            queue.task_done(taken[1], {"status_str": "success", "completed": True})
            done.append(taken[1])

    worker = threading.Thread(target=work)
    worker.start()
    threads = [threading.Thread(target=produce, args=(index,)) for index in range(producers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert sorted(done) == sorted(f"p{i}-{n}" for i in range(producers) for n in range(per_producer))
    for index in range(producers):
        mine = [prompt_id for prompt_id in done if prompt_id.startswith(f"p{index}-")]
        assert mine == [f"p{index}-{n}" for n in range(per_producer)]
    assert queue.remaining() == 0 and len(queue.history) == producers * per_producer


# A database written by schema version 1, kept verbatim so later schema changes must migrate it.
SCHEMA_V1_DUMP = """
PRAGMA user_version = 1;
CREATE TABLE queue (prompt_id TEXT PRIMARY KEY, number REAL NOT NULL, seq INTEGER NOT NULL, item TEXT NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('pending', 'running')));
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT, prompt_id TEXT NOT NULL UNIQUE, entry TEXT NOT NULL);
INSERT INTO queue VALUES ('later', 8, 2, '[8,"later",{},{"client_id":"c"},["9"]]', 'pending');
INSERT INTO queue VALUES ('sooner', 7, 3, '[7,"sooner",{},{},["9"]]', 'pending');
INSERT INTO queue VALUES ('was-running', 6, 1, '[6,"was-running",{},{},["9"]]', 'running');
INSERT INTO counters VALUES ('number', 8);
INSERT INTO history (prompt_id, entry) VALUES ('old', '{"prompt":[5,"old",{},{},["9"]],"outputs":{},"status":{"status_str":"success","completed":true,"messages":[]},"meta":{}}');
"""


def test_schema_v1_database_opens(tmp_path: Path):
    db = tmp_path / "v1.sqlite"
    with sqlite3.connect(db) as writer:
        writer.executescript(SCHEMA_V1_DUMP)
    queue = PromptQueue(db, on_interrupted="requeue")
    assert ids(queue.pending()) == ["was-running", "sooner", "later"]
    assert queue.pending()[2] == [8, "later", {}, {"client_id": "c"}, ["9"]]
    assert queue.history.get_one("old")["old"]["status"]["completed"] is True
    assert queue.next_number() == 9


def test_database_from_a_newer_kiln_is_refused(tmp_path: Path):
    db = tmp_path / "future.sqlite"
    with sqlite3.connect(db) as writer:
        writer.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="schema 99"):
        PromptQueue(db)
