"""Nodes that fail: each failure ends only its own prompt, with an error that says what went wrong.

Fixture nodes (``tests/fixtures/plugins/failing_node.py``) raise ``ValueError``, break the
return contract in three ways, and raise ``MemoryError``. For each: the history entry has
status ``error`` and an ``execution_error`` naming the node, its type, the exception type and a
message; the prompt queued right after it succeeds. Then 200 failing prompts in a row must
not make the server's resident memory grow by more than a small bound.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator

import pytest

from tests.helpers.kiln_server import KilnProcess, launch
from tests.reliability.kiln_http import KilnHttp, error_message, memory_kib

RSS_GROWTH_BOUND_MIB = 32


def good_prompt(tag: str) -> dict:
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1,
                                                         "color": int(tag[:6], 16)}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}


def raising(tag: str) -> dict:
    return {"1": {"class_type": "FixtureRaiseError", "inputs": {"message": f"no good: {tag}", "tag": tag}}}


def out_of_memory(tag: str) -> dict:
    return {"1": {"class_type": "FixtureOutOfMemory", "inputs": {"megabytes": 8, "tag": tag}}}


def wrong_return(mode: str):
    def prompt(tag: str) -> dict:
        return {"1": {"class_type": "FixtureWrongReturn", "inputs": {"mode": mode, "tag": tag}},
                "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    return prompt


# (prompt builder, node that must be named, exception type, words the message must contain)
FAILURES = {
    "raises": (raising, "1", "ValueError", ["no good"]),
    "memory_error": (out_of_memory, "1", "MemoryError", ["out of memory"]),
    "not_a_tuple": (wrong_return("not_a_tuple"), "1", "TypeError", ["tuple"]),
    "too_few_outputs": (wrong_return("too_few"), None, None, []),
    "wrong_value_type": (wrong_return("wrong_value"), "2", None, []),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KilnProcess]:
    kiln = launch(tmp_path_factory.mktemp("failing"), "--preview-method", "none", plugins=("failing_node.py",))
    yield kiln
    kiln.stop()


@pytest.mark.parametrize("kind", list(FAILURES))
def test_a_failing_node_fails_its_prompt_clearly_and_the_next_prompt_runs(server, kind):
    build, node_id, exception_type, words = FAILURES[kind]
    http = KilnHttp(server.url)
    failing = http.queue_prompt(build(uuid.uuid4().hex))
    following = http.queue_prompt(good_prompt(uuid.uuid4().hex))
    entries = http.wait_for_history([failing, following])

    failed = entries[failing]
    assert failed["status"]["status_str"] == "error" and failed["status"]["completed"] is False
    error = error_message(failed)
    assert error is not None, failed["status"]["messages"]
    assert error["prompt_id"] == failing and error["node_id"] in ("1", "2") and error["node_type"]
    assert error["exception_type"] and error["exception_message"].strip() and error["traceback"]
    if node_id is not None:
        assert error["node_id"] == node_id, error
    if exception_type is not None:
        assert error["exception_type"] == exception_type, error
    for word in words:
        assert word in error["exception_message"], error["exception_message"]

    assert entries[following]["status"]["status_str"] == "success"
    assert entries[following]["outputs"]["2"]["images"]


def test_two_hundred_failing_prompts_do_not_grow_memory(server):
    http = KilnHttp(server.url)
    builders = itertools.cycle([spec[0] for spec in FAILURES.values()])

    def fail_many(count: int) -> None:
        ids = [http.queue_prompt(next(builders)(uuid.uuid4().hex)) for _ in range(count)]
        entries = http.wait_for_history(ids, timeout=300)
        assert all(entry["status"]["status_str"] == "error" for entry in entries.values())

    fail_many(40)  # warm-up: imports, caches, allocator pools reach their steady size
    before = memory_kib(server.process.pid)
    fail_many(200)
    growth_mib = (memory_kib(server.process.pid) - before) / 1024
    print(f"RSS growth over 200 failing prompts: {growth_mib:.1f} MiB")
    assert growth_mib < RSS_GROWTH_BOUND_MIB
    assert http.get("/queue").json() == {"queue_running": [], "queue_pending": []}
