"""How nodes are called: list mapping, lazy inputs, async functions, ExecutionBlocker (§6.3–6.8)."""

from __future__ import annotations

import asyncio

from engine.context import current_context
from tests.helpers.engine_harness import Harness


def const(value) -> dict:
    return {"class_type": "Constant", "inputs": {"value": value}}


def add(a, b) -> dict:
    return {"class_type": "Add", "inputs": {"a": a, "b": b}}


def show(source: str) -> dict:
    return {"class_type": "Show", "inputs": {"value": [source, 0]}}


class TestListMapping:
    def test_a_list_output_maps_the_consumer_once_per_element(self, harness: Harness):
        run = harness.run({"1": {"class_type": "MakeList", "inputs": {"count": 3}}, "2": add(["1", 0], 10), "3": show("2")})
        assert [kwargs for name, _, kwargs in harness.log.calls if name == "Add"] == [
            {"a": 1, "b": 10}, {"a": 2, "b": 10}, {"a": 3, "b": 10},
        ]
        assert run.result.outputs["3"] == {"values": [11, 12, 13]}  # ui of three calls merged

    def test_shorter_lists_repeat_their_last_element(self, harness):
        harness.run({
            "1": {"class_type": "MakeList", "inputs": {"count": 3}}, "2": {"class_type": "MakeList", "inputs": {"count": 2}},
            "3": add(["1", 0], ["2", 0]), "4": show("3"),
        })
        assert [(k["a"], k["b"]) for name, _, k in harness.log.calls if name == "Add"] == [(1, 1), (2, 2), (3, 2)]

    def test_input_is_list_receives_whole_lists_in_one_call(self, harness):
        run = harness.run({
            "1": {"class_type": "MakeList", "inputs": {"count": 4}}, "2": {"class_type": "SumList", "inputs": {"values": ["1", 0]}},
            "3": show("2"),
        })
        assert [k for name, _, k in harness.log.calls if name == "SumList"] == [{"values": [1, 2, 3, 4]}]
        assert run.result.outputs["3"] == {"values": [10]}

    def test_output_is_list_concatenates_the_lists_of_each_call(self, harness):
        run = harness.run({
            "1": {"class_type": "MakeList", "inputs": {"count": 2}},
            "2": {"class_type": "MakeList", "inputs": {"count": ["1", 0]}},  # called with 1, then 2
            "3": {"class_type": "SumList", "inputs": {"values": ["2", 0]}}, "4": show("3"),
        })
        assert [k for name, _, k in harness.log.calls if name == "SumList"] == [{"values": [1, 1, 2]}]
        assert run.result.outputs["4"] == {"values": [4]}

    def test_a_node_without_inputs_is_called_once(self, harness):
        class NoInputs:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {}}
            RETURN_TYPES = ()
            FUNCTION = "run"
            OUTPUT_NODE = True

            def run(self, **kwargs):
                harness.log.record("NoInputs", kwargs)
                return {"ui": {"text": ["a", "b"]}}

        harness.add(NoInputs)
        run = harness.run({"1": {"class_type": "NoInputs", "inputs": {}}})
        assert harness.log.calls[0][2] == {}
        assert run.result.outputs == {"1": {"text": ["a", "b"]}}


class TestLazyInputs:
    def switch(self, select: bool) -> dict:
        return {
            "t": const(1), "f": {"class_type": "Fail", "inputs": {"value": ["t", 0]}},
            "s": {"class_type": "Switch", "inputs": {"select": select, "on_true": ["t", 0], "on_false": ["f", 0]}},
            "out": show("s"),
        }

    def test_the_unused_branch_is_never_evaluated(self, harness: Harness):
        run = harness.run(self.switch(True))
        assert run.result.status_str == "success"
        assert harness.log.count("Fail") == 0
        assert run.result.outputs["out"] == {"values": [1]}

    def test_check_lazy_status_sees_unevaluated_inputs_as_none_then_runs_again(self, harness):
        harness.run(self.switch(True))
        checks = [kwargs for name, _, kwargs in harness.log.calls if name == "Switch.check_lazy_status"]
        assert checks == [
            {"select": True, "on_true": None, "on_false": None},
            {"select": True, "on_true": 1, "on_false": None},
        ]
        assert harness.log.nodes().index("t") > harness.log.nodes().index("s")  # "t" ran only when asked for

    def test_the_requested_branch_runs_when_selected(self, harness):
        run = harness.run(self.switch(False))
        assert run.result.status_str == "error"
        assert run.sink.of("execution_error")[0]["node_id"] == "f"

    def test_a_lazy_input_whose_source_is_cached_needs_no_extra_run(self, harness):
        harness.run({"t": const(1), "out": show("t")})
        harness.log.calls.clear()
        harness.run(self.switch(True))
        assert harness.log.count("Constant") == 0
        assert [name for name, _, _ in harness.log.calls] == ["Switch.check_lazy_status", "Switch", "Show"]


class TestAsyncNodes:
    def test_an_async_node_runs_and_its_result_flows_on(self, harness: Harness):
        run = harness.run({"1": const(4), "2": {"class_type": "AsyncDouble", "inputs": {"value": ["1", 0], "delay": 0.0}}, "3": show("2")})
        assert run.result.outputs["3"] == {"values": [8]}

    def test_other_ready_nodes_run_while_an_async_node_waits(self, harness):
        harness.run({
            "1": const(4), "2": {"class_type": "AsyncDouble", "inputs": {"value": ["1", 0], "delay": 0.2}}, "3": show("2"),
            "4": const(5), "5": add(["4", 0], 1), "6": show("5"),
        })
        names = [name for name, _, _ in harness.log.calls]
        assert names.index("AsyncDouble.start") < names.index("Add") < names.index("AsyncDouble")

    def test_async_calls_of_a_mapped_node_run_concurrently(self, harness):
        run = harness.run({
            "1": {"class_type": "MakeList", "inputs": {"count": 3}},
            "2": {"class_type": "AsyncDouble", "inputs": {"value": ["1", 0], "delay": 0.05}}, "3": show("2"),
        })
        names = [name for name, _, _ in harness.log.calls if name.startswith("AsyncDouble")]
        assert names == ["AsyncDouble.start"] * 3 + ["AsyncDouble"] * 3
        assert run.result.outputs["3"] == {"values": [2, 4, 6]}

    def test_async_nodes_see_their_context_and_can_fail(self, harness):
        class AsyncProbe:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {}}
            RETURN_TYPES = ()
            FUNCTION = "run"
            OUTPUT_NODE = True

            async def run(self):
                await asyncio.sleep(0.01)
                raise RuntimeError(f"failed in {current_context().node_id}")

        harness.add(AsyncProbe)
        run = harness.run({"9": {"class_type": "AsyncProbe", "inputs": {}}})
        error = run.sink.of("execution_error")[0]
        assert (error["node_id"], error["exception_message"]) == ("9", "failed in 9")


class TestExecutionBlocker:
    def blocked(self, message: str) -> dict:
        return {
            "1": const(1), "2": {"class_type": "Block", "inputs": {"value": ["1", 0], "message": message}},
            "3": add(["2", 0], 1), "4": show("3"), "5": const(7), "6": show("5"),
        }

    def test_a_blocker_with_a_message_reports_and_execution_continues(self, harness: Harness):
        run = harness.run(self.blocked("not today"))
        errors = run.sink.of("execution_error")
        assert len(errors) == 1
        assert errors[0]["node_id"] == "3" and errors[0]["node_type"] == "Add"
        assert errors[0]["exception_type"] == "ExecutionBlocked"
        assert errors[0]["exception_message"] == "Execution Blocked: not today"
        assert (errors[0]["traceback"], errors[0]["current_inputs"], errors[0]["current_outputs"]) == ([], [], [])
        assert run.result.status_str == "success"
        assert run.result.outputs == {"6": {"values": [7]}}

    def test_blocked_consumers_and_output_nodes_are_skipped(self, harness):
        harness.run(self.blocked("not today"))
        assert harness.log.count("Add") == 0
        assert [k["value"] for name, _, k in harness.log.calls if name == "Show"] == [7]

    def test_a_blocker_without_message_is_silent(self, harness):
        run = harness.run(self.blocked(""))
        assert "execution_error" not in run.sink.names()
        assert run.result.status_str == "success"
        assert harness.log.count("Add") == 0
