"""engine.history: ComfyUI's history entries, paging and limits (comfy-compat §1.4)."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from engine.history import MAXIMUM_HISTORY_SIZE, SENSITIVE_EXTRA_DATA_KEYS, History, strip_sensitive


def make_history(max_size: int = MAXIMUM_HISTORY_SIZE) -> History:
    return History(sqlite3.connect(":memory:", check_same_thread=False), threading.RLock(), max_size=max_size)


def record(history: History, prompt_id: str, status_str: str = "success", **extra) -> None:
    item = (len(history), prompt_id, {}, {"client_id": "c", **extra}, [])
    history.add(item, status_str, status_str == "success", [], {"1": {"text": [prompt_id]}}, {})


def filled(count: int, max_size: int = MAXIMUM_HISTORY_SIZE) -> History:
    history = make_history(max_size)
    for index in range(count):
        record(history, f"p{index}")
    return history


def test_comfyui_limits_and_sensitive_keys():
    assert MAXIMUM_HISTORY_SIZE == 10000
    assert SENSITIVE_EXTRA_DATA_KEYS == ("auth_token_comfy_org", "api_key_comfy_org")


def test_entry_shape():
    history = make_history()
    record(history, "a", auth_token_comfy_org="t", api_key_comfy_org="k")
    assert history.get_one("a") == {
        "a": {
            "prompt": [0, "a", {}, {"client_id": "c"}, []],
            "outputs": {"1": {"text": ["a"]}},
            "status": {"status_str": "success", "completed": True, "messages": []},
            "meta": {},
        }
    }


def test_strip_sensitive_leaves_the_original_alone():
    extra = {"client_id": "c", "auth_token_comfy_org": "t"}
    assert strip_sensitive(extra) == {"client_id": "c"}
    assert "auth_token_comfy_org" in extra


def test_unknown_id_gives_an_empty_dict():
    assert make_history().get_one("missing") == {}


def test_get_without_arguments_returns_everything_in_insertion_order():
    history = filled(5)
    assert list(history.get()) == ["p0", "p1", "p2", "p3", "p4"]


def test_max_items_without_offset_returns_the_last_n():
    history = filled(5)
    assert list(history.get(max_items=2)) == ["p3", "p4"]
    assert list(history.get(max_items=50)) == ["p0", "p1", "p2", "p3", "p4"]


def test_offset_skips_from_the_oldest():
    history = filled(5)
    assert list(history.get(max_items=2, offset=1)) == ["p1", "p2"]
    assert list(history.get(offset=3)) == ["p3", "p4"]
    assert list(history.get(max_items=2, offset=4)) == ["p4"]
    assert list(history.get(max_items=2, offset=-1)) == ["p3", "p4"]


def test_oldest_entries_are_evicted_past_the_limit():
    history = filled(7, max_size=5)
    assert len(history) == 5
    assert history.prompt_ids() == ["p2", "p3", "p4", "p5", "p6"]
    assert history.get_one("p0") == {}


def test_rewriting_an_entry_keeps_its_place():
    history = filled(3)
    record(history, "p0", status_str="error")
    assert history.prompt_ids() == ["p0", "p1", "p2"]
    assert history.get_one("p0")["p0"]["status"]["status_str"] == "error"


def test_delete_and_wipe():
    history = filled(4)
    history.delete(["p1", "p3", "never-there"])
    assert history.prompt_ids() == ["p0", "p2"]
    assert "p0" in history and "p1" not in history
    history.wipe()
    assert len(history) == 0 and history.get() == {}


def test_values_json_cannot_hold_are_stored_as_text():
    history = make_history()
    history.add((0, "a", {}, {}, []), "success", True, [], {"1": {"odd": [object]}}, {})
    assert history.get_one("a")["a"]["outputs"]["1"]["odd"] == [str(object)]


@pytest.mark.parametrize("count", [0, 1])
def test_small_histories_page_cleanly(count: int):
    history = filled(count)
    assert len(history.get(max_items=3)) == count
