"""Re-running only what changed: signatures across prompts, IS_CHANGED, NOT_IDEMPOTENT (§6.5)."""

from __future__ import annotations

import copy

from engine.cache import LRU, NoCache
from tests.helpers.engine_harness import Harness


def const(value) -> dict:
    return {"class_type": "Constant", "inputs": {"value": value}}


def add(a, b) -> dict:
    return {"class_type": "Add", "inputs": {"a": a, "b": b}}


def show(source: str) -> dict:
    return {"class_type": "Show", "inputs": {"value": [source, 0]}}


# 1 -> 2 -> 3 -> out,  4 -> 5 -> 3
DIAMOND = {
    "1": const(1), "2": add(["1", 0], 10), "4": const(2), "5": add(["4", 0], 20),
    "3": {"class_type": "Add", "inputs": {"a": ["2", 0], "b": 0}}, "out": show("3"),
}


def counter_node(harness: Harness, name: str, is_changed=None, not_idempotent: bool = False, hidden_id: bool = False) -> list:
    """Register an INT source class called ``name``; returns the list its calls append to."""
    calls: list = []

    class Source:
        @classmethod
        def INPUT_TYPES(cls):
            types = {"required": {"value": ("INT",)}}
            if hidden_id:
                types["hidden"] = {"unique_id": "UNIQUE_ID"}
            return types

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"
        NOT_IDEMPOTENT = not_idempotent

        def run(self, value, unique_id=None):
            calls.append(value)
            return (value,)

    if is_changed is not None:
        Source.IS_CHANGED = classmethod(is_changed)
    Source.__name__ = name
    harness.add(Source)
    return calls


class TestResubmission:
    def test_an_identical_prompt_runs_nothing_but_reports_cached_outputs(self, harness: Harness):
        harness.run(copy.deepcopy(DIAMOND))
        first_calls = len(harness.log.calls)
        run = harness.run(copy.deepcopy(DIAMOND))
        assert len(harness.log.calls) == first_calls
        assert run.sink.of("execution_cached")[0]["nodes"] == ["1", "2", "3", "out"]
        assert run.sink.of("executed") == [{"node": "out", "display_node": "out", "output": {"values": [11]}, "prompt_id": "prompt-2"}]
        assert "executing" not in run.sink.names()
        assert run.result.outputs == {"out": {"values": [11]}}
        assert run.result.meta["out"]["node_id"] == "out"

    def test_editing_one_input_reruns_only_that_node_and_its_dependents(self, harness):
        harness.run(copy.deepcopy(DIAMOND))
        harness.log.calls.clear()
        edited = copy.deepcopy(DIAMOND)
        edited["2"]["inputs"]["b"] = 11
        run = harness.run(edited)
        assert harness.log.nodes() == ["2", "3", "out"]
        assert run.sink.of("execution_cached")[0]["nodes"] == ["1"]
        assert run.result.outputs == {"out": {"values": [12]}}

    def test_cached_nodes_outside_the_executed_outputs_are_listed_too(self, harness):
        harness.run({"1": const(1), "2": show("1"), "3": const(2), "4": show("3")})
        run = harness.run({"1": const(1), "2": show("1"), "3": const(2), "4": show("3")}, outputs=["2"])
        assert run.sink.of("execution_cached")[0]["nodes"] == ["1", "2", "3", "4"]
        assert set(run.result.outputs) == {"2", "4"}  # every node of the prompt with a cached UI

    def test_signatures_do_not_depend_on_node_ids(self, harness):
        harness.run({"1": const(5), "2": add(["1", 0], 1), "3": show("2")})
        harness.log.calls.clear()
        run = harness.run({"a": const(5), "b": add(["a", 0], 1), "c": show("b")})
        assert harness.log.calls == []
        assert run.sink.of("execution_cached")[0]["nodes"] == ["a", "b", "c"]

    def test_swapping_which_input_a_link_feeds_changes_the_signature(self, harness):
        harness.run({"1": const(5), "2": add(["1", 0], 1), "3": show("2")})
        harness.log.calls.clear()
        harness.run({"1": const(5), "2": {"class_type": "Add", "inputs": {"b": ["1", 0], "a": ["1", 0]}}, "3": show("2")})
        assert harness.log.nodes() == ["2", "3"]

    def test_with_no_cache_everything_reruns(self):
        harness = Harness(cache=NoCache())
        harness.run(copy.deepcopy(DIAMOND))
        harness.log.calls.clear()
        run = harness.run(copy.deepcopy(DIAMOND))
        assert harness.log.nodes() == ["1", "2", "3", "out"]
        assert run.sink.of("execution_cached")[0]["nodes"] == []
        assert run.result.outputs == {"out": {"values": [11]}}

    def test_keep_last_prompt_forgets_results_the_next_prompt_does_not_use(self, harness):
        harness.run({"1": const(1), "2": show("1")})
        harness.run({"1": const(2), "2": show("1")})
        harness.log.calls.clear()
        harness.run({"1": const(1), "2": show("1")})
        assert harness.log.nodes() == ["1", "2"]

    def test_lru_keeps_results_of_older_prompts(self):
        harness = Harness(cache=LRU(10))
        harness.run({"1": const(1), "2": show("1")})
        harness.run({"1": const(2), "2": show("1")})
        harness.log.calls.clear()
        harness.run({"1": const(1), "2": show("1")})
        assert harness.log.calls == []

    def test_reset_drops_everything(self, harness):
        harness.run(copy.deepcopy(DIAMOND))
        harness.executor.reset()
        harness.log.calls.clear()
        harness.run(copy.deepcopy(DIAMOND))
        assert harness.log.nodes() == ["1", "2", "3", "out"]


class TestIsChanged:
    def run_twice(self, harness, value=1):
        prompt = {"1": {"class_type": "Src", "inputs": {"value": value}}, "2": show("1")}
        harness.run(copy.deepcopy(prompt))
        harness.run(copy.deepcopy(prompt))

    def test_a_stable_value_allows_caching_and_is_called_once_per_prompt(self, harness):
        seen = []

        def is_changed(cls, value):
            seen.append(value)
            return "same"

        calls = counter_node(harness, "Src", is_changed)
        self.run_twice(harness, value=4)
        assert calls == [4]
        assert seen == [4, 4]

    def test_a_changing_value_forces_a_rerun(self, harness):
        values = iter(["a", "b"])
        calls = counter_node(harness, "Src", lambda cls, value: next(values))
        self.run_twice(harness)
        assert calls == [1, 1]

    def test_nan_always_reruns(self, harness):
        calls = counter_node(harness, "Src", lambda cls, **kwargs: float("nan"))
        self.run_twice(harness)
        assert calls == [1, 1]

    def test_raising_always_reruns(self, harness):
        def broken(cls, value):
            raise RuntimeError("no hash")

        calls = counter_node(harness, "Src", broken)
        self.run_twice(harness)
        assert calls == [1, 1]

    def test_links_arrive_as_none(self, harness):
        seen = []

        def is_changed(cls, value):
            seen.append(value)
            return 0

        counter_node(harness, "Src", is_changed)
        harness.run({"1": const(3), "2": {"class_type": "Src", "inputs": {"value": ["1", 0]}}, "3": show("2")})
        assert seen == [None]


class TestNodeIdInSignature:
    TWO_COPIES = {
        "1": {"class_type": "Src", "inputs": {"value": 1}}, "2": show("1"),
        "3": {"class_type": "Src", "inputs": {"value": 1}}, "4": {"class_type": "Add", "inputs": {"a": ["3", 0], "b": 1}}, "5": show("4"),
    }

    def test_identical_nodes_share_one_cache_entry(self, harness):
        calls = counter_node(harness, "Src")
        harness.run(copy.deepcopy(self.TWO_COPIES))
        assert calls == [1]

    def test_not_idempotent_nodes_are_keyed_by_id(self, harness):
        calls = counter_node(harness, "Src", not_idempotent=True)
        harness.run(copy.deepcopy(self.TWO_COPIES))
        assert calls == [1, 1]
        harness.run(copy.deepcopy(self.TWO_COPIES))
        assert calls == [1, 1]  # still cached across prompts under the same ids

    def test_a_hidden_unique_id_keys_by_id(self, harness):
        calls = counter_node(harness, "Src", hidden_id=True)
        harness.run(copy.deepcopy(self.TWO_COPIES))
        assert calls == [1, 1]

    def test_unkeyable_literal_inputs_always_rerun(self, harness):
        calls = counter_node(harness, "Src")
        prompt = {"1": {"class_type": "Src", "inputs": {"value": float("nan")}}, "2": show("1")}
        harness.run(copy.deepcopy(prompt), validate=False, outputs=["2"])
        harness.run(copy.deepcopy(prompt), validate=False, outputs=["2"])
        assert len(calls) == 2
