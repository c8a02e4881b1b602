"""The API prompt format helpers (comfy-compat §3, §7.1)."""

from __future__ import annotations

import json

import pytest

from engine.prompt import declared_inputs, full_type_name, hidden_inputs, input_spec, is_link, is_output_node, unwrap_value


@pytest.mark.parametrize("value, expected", [
    (["4", 0], True), (["4", 1.0], True),
    ([4, 0], False), (["4", "0"], False), (["4", 0, 1], False), (("4", 0), False), ("4", False), (["4", True], False),
])
def test_is_link(value, expected):
    assert is_link(value) is expected


def test_unwrap_value():
    assert unwrap_value({"__value__": [1, 2]}) == [1, 2]
    assert unwrap_value({"other": 1}) == {"other": 1}
    assert unwrap_value(3) == 3


INPUT_TYPES = {
    "required": {"image": ("IMAGE",), "amount": ("FLOAT", {"default": 1.0, "lazy": True})},
    "optional": {"mask": ("MASK", {"rawLink": True})},
    "hidden": {"unique_id": "UNIQUE_ID"},
}


def test_input_spec_finds_category_type_and_options():
    amount = input_spec(INPUT_TYPES, "amount")
    assert (amount.input_type, amount.category, amount.options) == ("FLOAT", "required", {"default": 1.0, "lazy": True})
    assert amount.is_lazy and not amount.is_raw_link
    assert amount.config == ["FLOAT", {"default": 1.0, "lazy": True}]
    assert input_spec(INPUT_TYPES, "mask").is_raw_link
    assert input_spec(INPUT_TYPES, "image").options == {}
    assert input_spec(INPUT_TYPES, "unique_id").category == "hidden"
    assert input_spec(INPUT_TYPES, "nope") is None


def test_declared_and_hidden_inputs():
    assert declared_inputs(INPUT_TYPES) == ["image", "amount", "mask"]
    assert hidden_inputs(INPUT_TYPES) == {"unique_id": "UNIQUE_ID"}


def test_output_node_must_be_exactly_true():
    assert is_output_node(type("A", (), {"OUTPUT_NODE": True}))
    assert not is_output_node(type("B", (), {"OUTPUT_NODE": 1}))
    assert not is_output_node(type("C", (), {}))


def test_full_type_name():
    assert full_type_name(ValueError) == "ValueError"
    assert full_type_name(json.JSONDecodeError) == "json.decoder.JSONDecodeError"

