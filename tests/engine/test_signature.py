"""Input signatures (comfy-compat §6.5)."""

from __future__ import annotations

import pytest

from engine.graph import DynamicPrompt
from engine.signature import SignatureBuilder, Unkeyable, stable_repr


class Plain:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": ("INT",), "b": ("INT",)}, "optional": {"c": ("INT",)}}


class WithId(Plain):
    NOT_IDEMPOTENT = True


CLASSES = {"Plain": Plain, "WithId": WithId}


def signatures(prompt: dict) -> SignatureBuilder:
    return SignatureBuilder(DynamicPrompt(prompt), CLASSES.get, lambda name: CLASSES[name].INPUT_TYPES(), lambda node_id, kind: None)


def plain(**inputs) -> dict:
    return {"class_type": "Plain", "inputs": inputs}


class TestStableRepr:
    def test_dicts_are_order_independent_and_lists_are_not(self):
        assert stable_repr({"x": 1, "y": [1, 2]}) == stable_repr({"y": [1, 2], "x": 1})
        assert stable_repr([1, 2]) != stable_repr([2, 1])

    def test_types_are_distinguished(self):
        assert len({stable_repr(1), stable_repr("1"), stable_repr(1.0), stable_repr(True)}) == 4

    @pytest.mark.parametrize("value", [float("nan"), object(), {1, 2}])
    def test_unkeyable_values(self, value):
        with pytest.raises(Unkeyable):
            stable_repr(value)


class TestSignatures:
    def test_literal_input_order_does_not_matter(self):
        assert signatures({"1": plain(a=1, b=2)}).get("1") == signatures({"1": plain(b=2, a=1)}).get("1")

    def test_a_changed_ancestor_changes_every_descendant(self):
        first = signatures({"1": plain(a=1, b=1), "2": plain(a=["1", 0], b=0), "3": plain(a=["2", 0], b=0)})
        second = signatures({"1": plain(a=9, b=1), "2": plain(a=["1", 0], b=0), "3": plain(a=["2", 0], b=0)})
        assert first.get("3") != second.get("3")

    def test_node_ids_do_not_matter(self):
        first = signatures({"1": plain(a=1, b=1), "2": plain(a=["1", 0], b=["1", 0])})
        second = signatures({"x": plain(a=1, b=1), "y": plain(a=["x", 0], b=["x", 0])})
        assert first.get("2") == second.get("y")

    def test_output_slot_matters(self):
        slot0 = signatures({"1": plain(a=1, b=1), "2": plain(a=["1", 0], b=0)}).get("2")
        slot1 = signatures({"1": plain(a=1, b=1), "2": plain(a=["1", 1], b=0)}).get("2")
        assert slot0 != slot1

    def test_not_idempotent_includes_the_node_id(self):
        prompt = {"1": {"class_type": "WithId", "inputs": {"a": 1, "b": 1}}, "2": {"class_type": "WithId", "inputs": {"a": 1, "b": 1}}}
        builder = signatures(prompt)
        assert builder.get("1") != builder.get("2")

    def test_unkeyable_inputs_never_match_even_themselves_across_builds(self):
        prompt = {"1": plain(a=object(), b=1)}
        assert signatures(prompt).get("1") != signatures(prompt).get("1")

    def test_signatures_of_a_long_chain_need_no_recursion(self):
        prompt = {"0": plain(a=0, b=0)}
        for index in range(1, 5000):
            prompt[str(index)] = plain(a=[str(index - 1), 0], b=index)
        assert len(signatures(prompt).get("4999")) == 16

    def test_nodes_on_a_cycle_get_signatures_that_never_match(self):
        prompt = {"1": plain(a=["2", 0], b=0), "2": plain(a=["1", 0], b=0)}
        assert signatures(prompt).get("2") != signatures(prompt).get("2")
