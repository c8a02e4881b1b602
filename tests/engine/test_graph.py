"""The dynamic prompt and the execution order (comfy-compat §6.2)."""

from __future__ import annotations

import pytest

from engine.graph import DynamicPrompt, ExecutionList


def node(**links) -> dict:
    return {"class_type": "N", "inputs": {name: [source, 0] for name, source in links.items()}}


def make_list(prompt: dict, outputs=(), lazy=(), available=()) -> ExecutionList:
    dynprompt = DynamicPrompt(prompt)
    return ExecutionList(
        dynprompt,
        has_output=lambda node_id: node_id in available,
        rank_hint=lambda node_id: 0 if node_id in outputs else 1,
        is_lazy=lambda node_id, name: (node_id, name) in lazy,
    )


def drain(execution_list: ExecutionList) -> list[str]:
    order = []
    while (node_id := execution_list.next_ready()) is not None:
        order.append(node_id)
        execution_list.complete(node_id)
    return order


class TestDynamicPrompt:
    def test_ephemeral_nodes_know_their_parent_display_and_real_node(self):
        dynprompt = DynamicPrompt({"1": node()})
        dynprompt.add_ephemeral_node("1.0.0.1", node(), parent_id="1", display_id="1")
        dynprompt.add_ephemeral_node("1.0.0.1.0.0.1", node(), parent_id="1.0.0.1", display_id="1.0.0.1")
        assert dynprompt.get_real_node_id("1.0.0.1.0.0.1") == "1"
        assert dynprompt.get_parent_node_id("1.0.0.1.0.0.1") == "1.0.0.1"
        assert dynprompt.get_display_node_id("1.0.0.1.0.0.1") == "1"
        assert dynprompt.get_parent_node_id("1") is None
        assert list(dynprompt.all_node_ids()) == ["1", "1.0.0.1", "1.0.0.1.0.0.1"]
        assert dynprompt.has_node("1.0.0.1") and not dynprompt.has_node("2")

    def test_unknown_node_raises(self):
        with pytest.raises(KeyError):
            DynamicPrompt({}).get_node("x")


class TestExecutionList:
    def test_ancestors_run_before_descendants(self):
        execution_list = make_list({"a": node(), "b": node(x="a"), "c": node(x="b", y="a")}, outputs={"c"})
        execution_list.add_node("c")
        assert drain(execution_list) == ["a", "b", "c"]
        assert execution_list.is_empty()

    def test_nodes_with_available_outputs_are_not_staged(self):
        execution_list = make_list({"a": node(), "b": node(x="a"), "c": node(x="b")}, outputs={"c"}, available={"b"})
        execution_list.add_node("c")
        assert drain(execution_list) == ["c"]

    def test_lazy_inputs_are_not_followed_until_asked_for(self):
        execution_list = make_list({"a": node(), "s": node(x="a")}, outputs={"s"}, lazy={("s", "x")})
        execution_list.add_node("s")
        assert execution_list.next_ready() == "s"
        execution_list.make_input_strong_link("s", "x")
        execution_list.requeue("s")
        assert drain(execution_list) == ["a", "s"]

    def test_preference_output_then_direct_feeder_then_two_hops_then_staging_order(self):
        prompt = {
            "far": node(), "far2": node(x="far"), "mid": node(x="far2"),
            "near": node(), "out1": node(x="mid", y="near"),
            "two": node(), "step": node(x="two"), "out2": node(x="step"),
            "solo": node(),
        }
        execution_list = make_list(prompt, outputs={"out1", "out2", "solo"})
        execution_list.add_node("out1")
        execution_list.add_node("out2")
        execution_list.add_node("solo")
        # ready at first: far (3+ hops), near (feeds out1), two (2 hops), solo (an output)
        assert [execution_list.next_ready() for _ in range(4)] == ["solo", "near", "two", "far"]

    def test_a_cycle_leaves_nodes_that_never_become_ready(self):
        execution_list = make_list({"a": node(x="b"), "b": node(x="a"), "out": node(x="b")}, outputs={"out"})
        execution_list.add_node("out")
        assert execution_list.next_ready() is None
        cycle = execution_list.find_cycle()
        assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b"}

    def test_links_to_missing_nodes_are_not_followed(self):
        execution_list = make_list({"a": node(x="ghost")}, outputs={"a"})
        execution_list.add_node("a")
        assert drain(execution_list) == ["a"]
