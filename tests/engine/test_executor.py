"""Executing prompts: what runs, in which order, events, errors and interrupts (§2.1, §6.2, §6.9)."""

from __future__ import annotations

import copy
import time

from engine.context import current_context
from tests.helpers.engine_harness import Harness


def const(value) -> dict:
    return {"class_type": "Constant", "inputs": {"value": value}}


def add(a, b) -> dict:
    return {"class_type": "Add", "inputs": {"a": a, "b": b}}


def show(source: str, slot: int = 0) -> dict:
    return {"class_type": "Show", "inputs": {"value": [source, slot]}}


CHAIN = {"1": const(3), "2": add(["1", 0], 4), "3": show("2")}


class TestWhatRuns:
    def test_a_chain_runs_in_order_and_reports_the_ui(self, harness: Harness):
        run = harness.run(copy.deepcopy(CHAIN))
        assert harness.log.nodes() == ["1", "2", "3"]
        assert run.result.status_str == "success" and run.result.completed is True
        assert run.result.outputs == {"3": {"values": [7]}}
        assert run.result.meta == {"3": {"node_id": "3", "display_node": "3", "parent_node": None, "real_node_id": "3"}}

    def test_only_requested_outputs_and_their_ancestors_run(self, harness):
        prompt = {**copy.deepcopy(CHAIN), "4": const(9), "5": const(1), "6": show("5")}
        harness.run(prompt, outputs=["3"], validate=False)
        assert harness.log.nodes() == ["1", "2", "3"]

    def test_one_outputs_branch_finishes_before_an_unrelated_branch_starts(self, harness):
        prompt = {
            "a1": const(1), "a2": add(["a1", 0], 1), "a3": add(["a2", 0], 1), "aout": show("a3"),
            "b1": const(2), "b2": add(["b1", 0], 1), "b3": add(["b2", 0], 1), "bout": show("b3"),
        }
        harness.run(prompt, outputs=["aout", "bout"], validate=False)
        order = harness.log.nodes()
        assert order.index("aout") < order.index("b1")
        assert order.index("bout") == len(order) - 1

    def test_a_node_feeding_an_output_runs_as_soon_as_it_can(self, harness):
        # "x" feeds output "o1" directly; "y" only feeds another Add. Both are ready at once.
        prompt = {"y": const(1), "mid": add(["y", 0], 1), "x": const(2), "o1": show("x"), "o2": show("mid")}
        harness.run(prompt, outputs=["o2", "o1"], validate=False)
        order = harness.log.nodes()
        assert order.index("o1") < order.index("mid")


class TestEvents:
    def test_event_order_and_shapes(self, harness):
        run = harness.run(copy.deepcopy(CHAIN))
        names = [name for name in run.sink.names() if name != "progress_state"]
        assert names == ["execution_start", "execution_cached", "executing", "executing", "executing", "executed", "execution_success"]
        start, cached = run.sink.of("execution_start")[0], run.sink.of("execution_cached")[0]
        assert set(start) == {"prompt_id", "timestamp"} and start["prompt_id"] == "prompt-1"
        assert abs(start["timestamp"] - time.time() * 1000) < 60_000
        assert cached["nodes"] == [] and set(cached) == {"nodes", "prompt_id", "timestamp"}
        assert run.sink.of("executing")[1] == {"node": "2", "display_node": "2", "prompt_id": "prompt-1"}
        assert run.sink.of("executed") == [{"node": "3", "display_node": "3", "output": {"values": [7]}, "prompt_id": "prompt-1"}]

    def test_history_messages_hold_only_the_status_events(self, harness):
        run = harness.run(copy.deepcopy(CHAIN))
        assert [name for name, _ in run.result.messages] == ["execution_start", "execution_cached", "execution_success"]
        assert all("timestamp" in data for _, data in run.result.messages)

    def test_progress_state_tracks_running_and_finished_nodes(self, harness):
        run = harness.run(copy.deepcopy(CHAIN))
        states = run.sink.of("progress_state")
        assert states[0]["nodes"]["1"]["state"] == "running"
        assert set(states[0]["nodes"]) == {"1"}  # pending nodes are left out
        final = states[-1]["nodes"]
        assert {node_id: entry["state"] for node_id, entry in final.items()} == {"1": "finished", "2": "finished", "3": "finished"}
        assert final["2"] == {
            "value": 1, "max": 1, "state": "finished", "node_id": "2", "prompt_id": "prompt-1",
            "display_node_id": "2", "parent_node_id": None, "real_node_id": "2",
        }

    def test_reporter_sends_progress_progress_state_and_previews(self, harness):
        class Steps:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {}}
            RETURN_TYPES = ()
            FUNCTION = "run"
            OUTPUT_NODE = True

            def run(self):
                context = current_context()
                for step in range(1, 3):
                    context.reporter.progress(step, 2, ("JPEG", f"image{step}", 512) if step == 2 else None)
                return {}

        harness.add(Steps)
        run = harness.run({"1": {"class_type": "Steps", "inputs": {}}})
        assert run.sink.of("progress") == [
            {"value": 1, "max": 2, "prompt_id": "prompt-1", "node": "1"},
            {"value": 2, "max": 2, "prompt_id": "prompt-1", "node": "1"},
        ]
        running = [s["nodes"]["1"] for s in run.sink.of("progress_state") if s["nodes"]["1"]["state"] == "running"]
        assert [(entry["value"], entry["max"]) for entry in running] == [(0, 1), (1, 2), (2, 2)]
        (preview, meta), = run.sink.previews
        assert preview == ("JPEG", "image2", 512)
        assert meta == {"node_id": "1", "prompt_id": "prompt-1", "display_node_id": "1", "parent_node_id": None, "real_node_id": "1"}


class TestNodeContextAndHidden:
    def test_node_context_names_the_running_node(self, harness):
        seen = []

        class Probe:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {}}
            RETURN_TYPES = ()
            FUNCTION = "run"
            OUTPUT_NODE = True

            def run(self):
                context = current_context()
                seen.append((context.prompt_id, context.node_id, context.display_node_id, dict(context.resources)))
                return {}

        harness.add(Probe)
        harness.executor.resources = {"options": {"preview": "auto"}}
        harness.run({"7": {"class_type": "Probe", "inputs": {}}})
        assert seen == [("prompt-1", "7", "7", {"options": {"preview": "auto"}})]
        assert current_context() is None

    def test_hidden_inputs_receive_prompt_dynprompt_extra_pnginfo_and_unique_id(self, harness):
        seen = {}

        class Hidden:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {}, "hidden": {
                    "prompt": "PROMPT", "dynprompt": "DYNPROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID",
                }}
            RETURN_TYPES = ()
            FUNCTION = "run"
            OUTPUT_NODE = True

            def run(self, prompt, dynprompt, extra_pnginfo, unique_id):
                seen.update(prompt=prompt, dynprompt=dynprompt, extra_pnginfo=extra_pnginfo, unique_id=unique_id)
                return {}

        harness.add(Hidden)
        prompt = {"5": {"class_type": "Hidden", "inputs": {}}}
        harness.run(prompt, extra_data={"extra_pnginfo": {"workflow": {"nodes": []}}})
        assert seen["prompt"] is prompt
        assert seen["dynprompt"].get_node("5") is prompt["5"]
        assert seen["extra_pnginfo"] == {"workflow": {"nodes": []}}
        assert seen["unique_id"] == "5"

    def test_raw_link_inputs_receive_the_link_itself(self, harness):
        seen = []

        class Raw:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"source": ("INT", {"rawLink": True})}}
            RETURN_TYPES = ()
            FUNCTION = "run"
            OUTPUT_NODE = True

            def run(self, source):
                seen.append(source)
                return {}

        harness.add(Raw)
        harness.run({"1": const(1), "2": {"class_type": "Raw", "inputs": {"source": ["1", 0]}}}, outputs=["2"], validate=False)
        assert seen == [["1", 0]]
        assert harness.log.nodes() == ["1"]  # the linked node is still a dependency, as in ComfyUI

    def test_node_instances_are_kept_per_node_id_and_class_across_prompts(self, harness):
        instances = []

        class Stateful:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"value": ("INT",)}}
            RETURN_TYPES = ()
            FUNCTION = "run"
            OUTPUT_NODE = True

            def run(self, value):
                instances.append(self)
                return {}

        harness.add(Stateful)
        harness.run({"1": {"class_type": "Stateful", "inputs": {"value": 1}}})
        harness.run({"1": {"class_type": "Stateful", "inputs": {"value": 2}}})
        harness.run({"2": {"class_type": "Stateful", "inputs": {"value": 3}}})
        assert instances[0] is instances[1]
        assert instances[2] is not instances[0]


class TestFailures:
    def test_node_exception_reports_execution_error_and_stops(self, harness):
        prompt = {
            "1": const(3), "2": {"class_type": "Fail", "inputs": {"value": ["1", 0]}}, "3": show("2"),
            "4": const(1), "5": add(["4", 0], 1), "6": show("5"),
        }
        run = harness.run(prompt, outputs=["3", "6"], validate=False)
        assert run.result.status_str == "error" and run.result.completed is False
        error = run.sink.of("execution_error")[0]
        assert [name for name, _ in run.result.messages][-1] == "execution_error"
        assert error["prompt_id"] == "prompt-1"
        assert error["node_id"] == "2" and error["node_type"] == "Fail"
        assert error["exception_message"] == "cannot handle 3"
        assert error["exception_type"] == "ValueError"
        assert error["executed"] == ["1"]
        assert error["current_inputs"] == {"value": [3]}
        assert error["current_outputs"] == ["1"]
        assert any("raise ValueError" in line for line in error["traceback"])
        assert "execution_success" not in run.sink.names()
        assert run.sink.of("progress_state")[-1]["nodes"]["2"]["state"] == "error"
        assert harness.log.nodes() == ["1", "2"]

    def test_non_builtin_exceptions_are_named_with_their_module(self, harness):
        class Custom(Exception):
            pass

        class Raises:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {}}
            RETURN_TYPES = ()
            FUNCTION = "run"
            OUTPUT_NODE = True

            def run(self):
                raise Custom("boom")

        harness.add(Raises)
        run = harness.run({"1": {"class_type": "Raises", "inputs": {}}})
        exception_type = run.sink.of("execution_error")[0]["exception_type"]
        assert exception_type == f"{__name__}.{Custom.__qualname__}"
        assert exception_type.endswith("<locals>.Custom")

    def test_long_input_values_are_shortened_in_current_inputs(self, harness):
        class Big:
            def __str__(self):
                return "x" * 10_000

        class MakeBig:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {}}
            RETURN_TYPES = ("INT",)
            FUNCTION = "run"

            def run(self):
                return (Big(),)

        harness.add(MakeBig)
        prompt = {"1": {"class_type": "MakeBig", "inputs": {}}, "2": {"class_type": "Fail", "inputs": {"value": ["1", 0]}}, "3": show("2")}
        run = harness.run(prompt, outputs=["3"], validate=False)
        (formatted,) = run.sink.of("execution_error")[0]["current_inputs"]["value"]
        assert formatted.startswith("xxx") and len(formatted) <= 200

    def test_the_executor_stays_usable_after_an_error(self, harness):
        failing = {"1": const(3), "2": {"class_type": "Fail", "inputs": {"value": ["1", 0]}}, "3": show("2")}
        harness.run(failing, outputs=["3"], validate=False)
        run = harness.run(copy.deepcopy(CHAIN))
        assert run.result.status_str == "success"
        assert run.sink.of("execution_cached")[0]["nodes"] == ["1"]  # node 1's output survived the failed prompt

    def test_a_dependency_cycle_is_reported_as_graph_dependency_cycle_error(self, harness):
        prompt = {"1": add(["2", 0], 1), "2": add(["1", 0], 1), "3": show("2")}
        run = harness.run(prompt, outputs=["3"], validate=False)
        error = run.sink.of("execution_error")[0]
        assert error["exception_type"] == "graph.DependencyCycleError"
        assert error["node_id"] in ("1", "2")
        assert "Dependency cycle detected" in error["exception_message"]
        assert run.result.status_str == "error"
        assert harness.log.calls == []

    def test_an_unknown_output_id_is_ignored(self, harness):
        run = harness.run(copy.deepcopy(CHAIN), outputs=["3", "nope"], validate=False)
        assert run.result.status_str == "success"


class TestInterrupt:
    def make_interrupting(self, harness, via_progress: bool):
        class Interrupter:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"value": ("INT",)}}
            RETURN_TYPES = ("INT",)
            FUNCTION = "run"

            def run(self, value):
                context = current_context()
                context.interrupt.set()
                if via_progress:
                    context.reporter.progress(1, 10)
                return (value,)

        harness.add(Interrupter)
        return {"1": const(1), "2": {"class_type": "Interrupter", "inputs": {"value": ["1", 0]}}, "3": show("2")}

    def test_interrupt_between_nodes_stops_before_the_next_node(self, harness):
        run = harness.run(self.make_interrupting(harness, via_progress=False))
        assert run.result.status_str == "error" and run.result.completed is False
        (interrupted,) = run.sink.of("execution_interrupted")
        assert interrupted == {
            "prompt_id": "prompt-1", "node_id": "3", "node_type": "Show", "executed": ["1", "2"], "timestamp": interrupted["timestamp"],
        }
        assert [name for name, _ in run.result.messages][-1] == "execution_interrupted"
        assert harness.log.count("Show") == 0
        assert not harness.interrupt.is_set()  # the flag stops one prompt only

    def test_interrupt_inside_a_node_through_its_progress_reporter(self, harness):
        run = harness.run(self.make_interrupting(harness, via_progress=True))
        interrupted = run.sink.of("execution_interrupted")[0]
        assert interrupted["node_id"] == "2" and interrupted["executed"] == ["1"]
        assert "execution_error" not in run.sink.names()

    def test_a_stale_interrupt_is_cleared_when_a_prompt_starts(self, harness):
        harness.interrupt.set()
        assert harness.run(copy.deepcopy(CHAIN)).result.status_str == "success"


class TestUnvalidatedPrompts:
    def test_an_unknown_class_fails_that_node_only_when_it_runs(self, harness):
        prompt = {"1": {"class_type": "Missing", "inputs": {}}, "2": show("1"), "3": const(1), "4": show("3")}
        run = harness.run(prompt, outputs=["4", "2"], validate=False)
        error = run.sink.of("execution_error")[0]
        assert (error["node_id"], error["node_type"], error["exception_type"]) == ("1", "Missing", "KeyError")
        assert harness.log.nodes() == ["3", "4"]

    def test_wrapped_list_values_are_unwrapped_for_the_node(self, harness):
        seen = []

        class TakesList:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"points": ("POINTS",)}}
            RETURN_TYPES = ()
            FUNCTION = "run"
            OUTPUT_NODE = True

            def run(self, points):
                seen.append(points)
                return {}

        harness.add(TakesList)
        harness.run({"1": {"class_type": "TakesList", "inputs": {"points": {"__value__": [1, 2]}}}}, outputs=["1"], validate=False)
        assert seen == [[1, 2]]


class TestReturnValues:
    def make(self, harness, returned, return_types=()):
        class Returns:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {}}
            RETURN_TYPES = return_types
            FUNCTION = "run"
            OUTPUT_NODE = True

            def run(self):
                return returned

        harness.add(Returns)
        return harness.run({"1": {"class_type": "Returns", "inputs": {}}})

    def test_an_output_node_may_return_nothing(self, harness):
        assert self.make(harness, None).result.status_str == "success"

    def test_a_value_that_is_no_tuple_is_a_clear_error(self, harness):
        run = self.make(harness, 5, ("INT",))
        error = run.sink.of("execution_error")[0]
        assert error["exception_type"] == "TypeError"
        assert "Returns.run returned int" in error["exception_message"]

    def test_a_list_is_accepted_like_a_tuple(self, harness):
        class ReturnsList:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {}}
            RETURN_TYPES = ("INT",)
            FUNCTION = "run"

            def run(self):
                return [7]

        harness.add(ReturnsList)
        run = harness.run({"1": {"class_type": "ReturnsList", "inputs": {}}, "2": show("1")})
        assert run.result.outputs["2"] == {"values": [7]}


class TestRobustness:
    def test_a_malformed_prompt_is_reported_not_raised(self, harness):
        run = harness.run({"1": "not a node", "2": show("1")}, outputs=["2"], validate=False)
        assert run.result.status_str == "error"
        assert run.sink.of("execution_error")[0]["exception_type"] == "AttributeError"
