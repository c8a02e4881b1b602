"""Node expansion and GraphBuilder (comfy-compat §6.7)."""

from __future__ import annotations

import contextvars

import pytest

from engine.expansion import ExecutionBlocker, GraphBuilder, add_graph_prefix, prefix_scope
from tests.helpers.engine_harness import Harness


def show(source: str) -> dict:
    return {"class_type": "Show", "inputs": {"value": [source, 0]}}


def expanding(class_type: str, source: dict, **inputs) -> dict:
    """``source`` -> node "2" of ``class_type`` (its ``value`` linked to "1") -> Show "3"."""
    return {"1": source, "2": {"class_type": class_type, "inputs": {"value": ["1", 0], **inputs}}, "3": show("2")}


def constant(value: int) -> dict:
    return {"class_type": "Constant", "inputs": {"value": value}}


class TestGraphBuilder:
    def test_default_prefix_is_root_call_index_graph_index(self):
        with prefix_scope("12", 3):
            first, second = GraphBuilder(), GraphBuilder()
        assert (first.prefix, second.prefix) == ("12.3.0.", "12.3.1.")

    def test_outside_a_node_the_prefix_root_is_empty(self):
        prefixes = contextvars.Context().run(lambda: (GraphBuilder().prefix, GraphBuilder().prefix))
        assert prefixes == (".0.0.", ".0.1.")

    def test_set_default_prefix_sets_the_parts(self):
        with prefix_scope("x", 0):
            GraphBuilder.set_default_prefix("7", 2, 5)
            assert GraphBuilder().prefix == "7.2.5."

    def test_nodes_links_and_finalize(self):
        graph = GraphBuilder(prefix="p.")
        source = graph.node("Constant", value=1)
        total = graph.node("Add", a=source.out(0), b=2)
        named = graph.node("Show", id="end", value=total.out(0))
        named.set_override_display_id("42")
        assert source.out(0) == ["p.1", 0]
        assert graph.finalize() == {
            "p.1": {"class_type": "Constant", "inputs": {"value": 1}},
            "p.2": {"class_type": "Add", "inputs": {"a": ["p.1", 0], "b": 2}},
            "p.end": {"class_type": "Show", "inputs": {"value": ["p.2", 0]}, "override_display_id": "42"},
        }

    def test_node_with_an_existing_id_returns_that_node(self):
        graph = GraphBuilder(prefix="p.")
        assert graph.node("Constant", id="a", value=1) is graph.node("Constant", id="a", value=2)

    def test_lookup_replace_output_and_remove(self):
        graph = GraphBuilder(prefix="p.")
        graph.node("Constant", id="a", value=1)
        graph.node("Constant", id="b", value=2)
        user = graph.node("Add", id="c", a=["p.a", 0], b=["p.a", 0])
        assert graph.lookup_node("c") is user
        graph.replace_node_output("a", 0, ["p.b", 0])
        assert user.inputs == {"a": ["p.b", 0], "b": ["p.b", 0]}
        graph.replace_node_output("b", 0, None)
        assert user.inputs == {}
        graph.remove_node("a")
        assert graph.lookup_node("a") is None

    def test_add_graph_prefix_renames_nodes_and_links(self):
        graph = {"1": {"class_type": "Constant", "inputs": {"value": 1}}, "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 3}}}
        new_graph, outputs = add_graph_prefix(graph, (["2", 0], 5), "x.")
        assert new_graph == {
            "x.1": {"class_type": "Constant", "inputs": {"value": 1}},
            "x.2": {"class_type": "Add", "inputs": {"a": ["x.1", 0], "b": 3}},
        }
        assert outputs == (["x.2", 0], 5)


class TestExpansionInTheExecutor:
    def test_an_expanded_subgraph_computes_the_result(self, harness: Harness):
        run = harness.run(expanding("ExpandSum", constant(5), times=3))
        assert run.result.outputs["3"] == {"values": [15]}
        added = [node_id for name, node_id, _ in harness.log.calls if name == "Add"]
        assert added == ["2.0.0.2", "2.0.0.3", "2.0.0.4"]

    def test_ephemeral_nodes_report_their_parent_as_display_node(self, harness):
        run = harness.run(expanding("ExpandSum", constant(5), times=1))
        executing = run.sink.of("executing")
        assert {"node": "2.0.0.2", "display_node": "2", "prompt_id": "prompt-1"} in executing
        inner = run.sink.of("progress_state")[-1]["nodes"]["2.0.0.2"]
        assert (inner["parent_node_id"], inner["real_node_id"], inner["display_node_id"]) == ("2", "2", "2")

    def test_a_resubmitted_expanding_node_is_cached_without_expanding_again(self, harness):
        harness.run(expanding("ExpandSum", constant(5), times=2))
        harness.log.calls.clear()
        run = harness.run(expanding("ExpandSum", constant(5), times=2))
        assert harness.log.calls == []
        assert run.sink.of("execution_cached")[0]["nodes"] == ["1", "2", "3"]

    def test_nested_expansion(self, harness):
        class ExpandTwice:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"value": ("INT",)}}
            RETURN_TYPES = ("INT",)
            FUNCTION = "run"

            def run(self, value):
                graph = GraphBuilder()
                inner = graph.node("ExpandSum", value=value, times=2)
                outer = graph.node("ExpandSum", value=inner.out(0), times=2)
                return {"result": (outer.out(0),), "expand": graph.finalize()}

        harness.add(ExpandTwice)
        run = harness.run(expanding("ExpandTwice", constant(3)))
        assert run.result.outputs["3"] == {"values": [12]}
        nested = [node_id for name, node_id, _ in harness.log.calls if name == "Add"]
        assert "2.0.0.1.0.0.2" in nested  # the inner ExpandSum's own prefix starts with its id
        states = run.sink.of("progress_state")[-1]["nodes"]
        assert states["2.0.0.1.0.0.2"]["real_node_id"] == "2"
        assert states["2.0.0.1.0.0.2"]["parent_node_id"] == "2.0.0.1"
        assert states["2.0.0.1.0.0.2"]["display_node_id"] == "2"

    def test_output_nodes_created_by_expansion_run_and_report(self, harness):
        class ExpandShow:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"value": ("INT",)}}
            RETURN_TYPES = ("INT",)
            FUNCTION = "run"

            def run(self, value):
                graph = GraphBuilder()
                graph.node("Show", id="shown", value=value + 1)
                return {"result": (value,), "expand": graph.finalize()}

        harness.add(ExpandShow)
        run = harness.run(expanding("ExpandShow", constant(3)))
        assert run.result.outputs == {"2.0.0.shown": {"values": [4]}, "3": {"values": [3]}}
        assert run.result.meta["2.0.0.shown"] == {"node_id": "2.0.0.shown", "display_node": "2", "parent_node": "2", "real_node_id": "2"}
        assert {"node": "2.0.0.shown", "display_node": "2", "output": {"values": [4]}, "prompt_id": "prompt-1"} in run.sink.of("executed")

    def test_a_mapped_expanding_node_gets_one_prefix_per_call(self, harness):
        run = harness.run(expanding("ExpandSum", {"class_type": "MakeList", "inputs": {"count": 2}}, times=1))
        assert run.result.outputs["3"] == {"values": [1, 2]}
        added = sorted(node_id for name, node_id, _ in harness.log.calls if name == "Add")
        assert added == ["2.0.0.2", "2.1.0.2"]

    def test_duplicate_node_ids_are_a_duplicate_node_error(self, harness):
        class Clash:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {}}
            RETURN_TYPES = ("INT",)
            FUNCTION = "run"

            def run(self):
                return {"result": (["1", 0],), "expand": {"1": {"class_type": "Constant", "inputs": {"value": 1}}}}

        harness.add(Clash)
        run = harness.run({"1": {"class_type": "Clash", "inputs": {}}, "2": show("1")})
        error = run.sink.of("execution_error")[0]
        assert error["exception_type"] == "engine.expansion.DuplicateNodeError"
        assert "Attempt to add duplicate node 1" in error["exception_message"]

    def test_an_expansion_whose_result_is_a_blocker_blocks_consumers(self, harness):
        class BlockedExpansion:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {}}
            RETURN_TYPES = ("INT",)
            FUNCTION = "run"

            def run(self):
                return {"result": ExecutionBlocker(None), "expand": {}}

        harness.add(BlockedExpansion)
        run = harness.run({"1": {"class_type": "BlockedExpansion", "inputs": {}}, "2": show("1")})
        assert run.result.status_str == "success"
        assert harness.log.count("Show") == 0


@pytest.mark.parametrize("times", [1, 4])
def test_expansion_results_match_direct_computation(harness: Harness, times: int):
    run = harness.run(expanding("ExpandSum", constant(7), times=times))
    assert run.result.outputs["3"] == {"values": [7 * times]}


def test_editing_an_expanding_node_reruns_only_the_changed_part_of_its_subgraph(harness: Harness):
    harness.run(expanding("ExpandSum", constant(7), times=2))
    harness.log.calls.clear()
    run = harness.run(expanding("ExpandSum", constant(7), times=3))
    assert run.result.outputs["3"] == {"values": [21]}
    # The sub-graph's constant and first two adds are unchanged and come from the cache.
    assert [(name, node_id) for name, node_id, _ in harness.log.calls if name != "Show"] == [
        ("ExpandSum", "2"), ("Add", "2.0.0.4"),
    ]
