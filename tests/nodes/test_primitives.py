"""Primitive nodes pass their widget value through unchanged, with ComfyUI's widget options."""

from __future__ import annotations

import sys

import pytest

from nodes.primitives import (
    NODE_CLASS_MAPPINGS,
    PrimitiveBoolean,
    PrimitiveFloat,
    PrimitiveInt,
    PrimitiveString,
    PrimitiveStringMultiline,
)


@pytest.mark.parametrize(
    "node_class, value",
    [
        (PrimitiveInt, -(2**62)),
        (PrimitiveFloat, 3.25),
        (PrimitiveString, "a cat"),
        (PrimitiveStringMultiline, "line one\nline two"),
        (PrimitiveBoolean, False),
    ],
)
def test_output_is_the_widget_value(node_class, value):
    node = node_class()
    assert getattr(node, node_class.FUNCTION)(value=value) == (value,)


@pytest.mark.parametrize("name", sorted(NODE_CLASS_MAPPINGS))
def test_output_type_is_the_input_type(name):
    node_class = NODE_CLASS_MAPPINGS[name]
    (input_type, _options) = node_class.INPUT_TYPES()["required"]["value"]
    assert node_class.RETURN_TYPES == (input_type,)


def test_string_primitives_differ_only_in_multiline():
    single = PrimitiveString.INPUT_TYPES()["required"]["value"]
    multi = PrimitiveStringMultiline.INPUT_TYPES()["required"]["value"]
    assert single == ("STRING", {"multiline": False})
    assert multi == ("STRING", {"multiline": True})


def test_int_spans_the_platform_word_and_offers_control_after_generate():
    options = PrimitiveInt.INPUT_TYPES()["required"]["value"][1]
    assert (options["min"], options["max"]) == (-sys.maxsize, sys.maxsize)
    assert options["control_after_generate"] is True
    assert "default" not in options
