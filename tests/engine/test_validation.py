"""Prompt validation, error by error (comfy-compat §1.3, §6.1)."""

from __future__ import annotations

import json

import pytest

from engine.registry import NodeRegistry
from engine.validation import types_compatible, validate_prompt
from tests.helpers.engine_harness import ANY, AnyType, Harness


def show(source: str, slot: int = 0) -> dict:
    return {"class_type": "Show", "inputs": {"value": [source, slot]}}


def const(value) -> dict:
    return {"class_type": "Constant", "inputs": {"value": value}}


def add(a, b) -> dict:
    return {"class_type": "Add", "inputs": {"a": a, "b": b}}


@pytest.fixture
def registry(harness: Harness) -> NodeRegistry:
    return harness.registry


def only_error(result, node_id: str) -> dict:
    errors = result.node_errors[node_id]["errors"]
    assert len(errors) == 1, errors
    return errors[0]


class TestPromptLevel:
    def test_a_valid_prompt_lists_its_outputs(self, registry):
        result = validate_prompt(registry, {"1": const(1), "2": show("1")})
        assert (result.ok, result.error, result.outputs, result.node_errors) == (True, None, ["2"], {})

    def test_missing_class_type_is_invalid_prompt(self, registry):
        result = validate_prompt(registry, {"1": {"inputs": {}}, "2": show("1")})
        assert result.ok is False
        assert result.error == {
            "type": "invalid_prompt",
            "message": "Cannot execute because a node is missing the class_type property.",
            "details": "Node ID '#1'",
            "extra_info": {},
        }
        assert result.node_errors == {}

    def test_unknown_class_is_invalid_prompt(self, registry):
        result = validate_prompt(registry, {"1": {"class_type": "Nope", "inputs": {}}})
        assert result.error["type"] == "invalid_prompt"
        assert result.error["message"] == "Cannot execute because node Nope does not exist."
        assert result.error["details"] == "Node ID '#1'"

    @pytest.mark.parametrize("class_type", [["SaveImage"], {"name": "SaveImage"}, 7, None])
    def test_a_class_type_that_is_not_a_string_is_invalid_prompt(self, registry, class_type):
        result = validate_prompt(registry, {"1": {"class_type": class_type, "inputs": {}}})
        assert result.error["type"] == "invalid_prompt"
        assert result.error["details"] == "Node ID '#1'"

    @pytest.mark.parametrize("inputs", [None, [], "text", 3])
    def test_inputs_that_are_not_an_object_are_invalid_prompt(self, registry, inputs):
        result = validate_prompt(registry, {"1": const(1), "2": {**show("1"), "inputs": inputs}})
        assert result.ok is False
        assert result.error["type"] == "invalid_prompt"
        assert result.error["details"] == "Node ID '#2'"

    def test_no_output_node_is_prompt_no_outputs(self, registry):
        result = validate_prompt(registry, {"1": const(1)})
        assert result.error == {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "", "extra_info": {}}

    def test_partial_targets_keep_only_listed_outputs_and_ignore_non_outputs(self, registry):
        prompt = {"1": const(1), "2": show("1"), "3": show("1")}
        assert validate_prompt(registry, prompt, partial_targets=["3", "1"]).outputs == ["3"]
        assert validate_prompt(registry, prompt, partial_targets=["1"]).error["type"] == "prompt_no_outputs"

    def test_one_good_output_is_enough_and_failed_outputs_are_dropped(self, registry):
        prompt = {"1": const(1), "2": show("1"), "3": const(5000), "4": show("3")}
        result = validate_prompt(registry, prompt)
        assert result.ok is True and result.error is None
        assert result.outputs == ["2"]
        assert list(result.node_errors) == ["3"]
        assert result.node_errors["3"]["dependent_outputs"] == ["4"]
        assert result.node_errors["3"]["class_type"] == "Constant"

    def test_all_outputs_failing_is_prompt_outputs_failed_validation(self, registry):
        prompt = {"1": const(5000), "2": show("1"), "3": {"class_type": "Show", "inputs": {}}}
        result = validate_prompt(registry, prompt)
        assert result.ok is False and result.outputs == []
        assert result.error["type"] == "prompt_outputs_failed_validation"
        assert result.error["message"] == "Prompt outputs failed validation"
        # Only the outputs' own errors are listed in details; upstream errors are in node_errors.
        assert result.error["details"] == "Required input is missing: value"
        assert set(result.node_errors) == {"1", "3"}

    def test_downstream_nodes_that_fail_only_because_of_upstream_are_not_listed(self, registry):
        prompt = {"1": const(5000), "2": add(["1", 0], 1), "3": add(["2", 0], 1), "4": show("3")}
        result = validate_prompt(registry, prompt)
        assert list(result.node_errors) == ["1"]
        assert result.node_errors["1"]["dependent_outputs"] == ["4"]

    def test_dependent_outputs_list_every_failed_output_that_needs_the_node(self, registry):
        prompt = {"1": const(5000), "2": show("1"), "3": show("1"), "4": const(1), "5": show("4")}
        result = validate_prompt(registry, prompt)
        assert result.node_errors["1"]["dependent_outputs"] == ["2", "3"]
        assert result.outputs == ["5"]

    def test_result_is_json_serialisable(self, registry):
        result = validate_prompt(registry, {"1": const("x"), "2": show("1")})
        json.dumps({"error": result.error, "node_errors": result.node_errors})


class TestInputs:
    def test_required_input_missing(self, registry):
        result = validate_prompt(registry, {"1": {"class_type": "Add", "inputs": {"b": 1}}, "2": show("1"), "3": const(1), "4": show("3")})
        assert only_error(result, "1") == {
            "type": "required_input_missing", "message": "Required input is missing",
            "details": "a", "extra_info": {"input_name": "a"},
        }

    def test_bad_linked_input(self, registry):
        result = validate_prompt(registry, {"1": {"class_type": "Show", "inputs": {"value": ["1", 0, 2]}}})
        error = only_error(result, "1")
        assert error["type"] == "bad_linked_input"
        assert error["details"] == "value"
        assert error["extra_info"] == {"input_name": "value", "input_config": [ANY, {}], "received_value": ["1", 0, 2]}

    def test_return_type_mismatch(self, registry, harness):
        class MakeText:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {}}
            RETURN_TYPES = ("STRING",)
            FUNCTION = "run"

        harness.add(MakeText)
        result = validate_prompt(registry, {"1": {"class_type": "MakeText", "inputs": {}}, "2": add(["1", 0], 1), "3": show("2")})
        error = only_error(result, "2")
        assert error == {
            "type": "return_type_mismatch",
            "message": "Return type mismatch between linked nodes",
            "details": "a, received_type(STRING) mismatch input_type(INT)",
            "extra_info": {"input_name": "a", "input_config": ["INT", {}], "received_type": "STRING", "linked_node": ["1", 0]},
        }

    def test_invalid_input_type_and_in_place_coercion(self, registry):
        prompt = {"1": const("12"), "2": show("1"), "3": const("twelve"), "4": show("3")}
        result = validate_prompt(registry, prompt)
        assert prompt["1"]["inputs"]["value"] == 12
        error = only_error(result, "3")
        assert error["type"] == "invalid_input_type"
        assert error["message"] == "Failed to convert an input value to a INT value"
        assert error["details"].startswith("value, twelve, invalid literal for int()")
        assert error["extra_info"]["received_value"] == "twelve"
        assert error["extra_info"]["input_config"] == ["INT", {"default": 0, "min": -1000, "max": 1000}]

    def test_value_smaller_than_min(self, registry):
        result = validate_prompt(registry, {"1": const(-1001), "2": show("1")})
        assert only_error(result, "1") == {
            "type": "value_smaller_than_min", "message": "Value -1001 smaller than min of -1000", "details": "value",
            "extra_info": {
                "input_name": "value", "input_config": ["INT", {"default": 0, "min": -1000, "max": 1000}], "received_value": -1001,
            },
        }

    def test_value_bigger_than_max(self, registry):
        result = validate_prompt(registry, {"1": const(1001), "2": show("1")})
        error = only_error(result, "1")
        assert (error["type"], error["message"]) == ("value_bigger_than_max", "Value 1001 bigger than max of 1000")

    def test_linked_values_are_never_range_checked(self, registry):
        assert validate_prompt(registry, {"1": const(1000), "2": add(["1", 0], 1000), "3": add(["2", 0], 1), "4": show("3")}).ok

    def test_value_not_in_list(self, registry, harness):
        class Pick:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"short": (["a", "b"],), "long": ([f"o{i}" for i in range(21)],)}}
            RETURN_TYPES = ()
            FUNCTION = "run"
            OUTPUT_NODE = True

        harness.add(Pick)
        result = validate_prompt(registry, {"1": {"class_type": "Pick", "inputs": {"short": "c", "long": "x"}}})
        short, long = result.node_errors["1"]["errors"]
        assert short == {
            "type": "value_not_in_list", "message": "Value not in list", "details": "short: 'c' not in ['a', 'b']",
            "extra_info": {"input_name": "short", "input_config": [["a", "b"], {}], "received_value": "c"},
        }
        assert long["details"] == "long: 'x' not in (list of length 21)"
        assert long["extra_info"]["input_config"] is None

    def test_v3_style_combo_is_not_membership_checked(self, registry, harness):
        class PickV3:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"choice": ("COMBO", {"options": ["a", "b"]})}}
            RETURN_TYPES = ()
            FUNCTION = "run"
            OUTPUT_NODE = True

        harness.add(PickV3)
        assert validate_prompt(registry, {"1": {"class_type": "PickV3", "inputs": {"choice": "zzz"}}}).ok

    def test_wrapped_list_values_are_unwrapped_in_place(self, registry, harness):
        class TakesList:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"points": ("POINTS",)}}
            RETURN_TYPES = ()
            FUNCTION = "run"
            OUTPUT_NODE = True

        harness.add(TakesList)
        prompt = {"1": {"class_type": "TakesList", "inputs": {"points": {"__value__": [1, 2]}}}}
        assert validate_prompt(registry, prompt).ok
        assert prompt["1"]["inputs"]["points"] == [1, 2]

    def test_optional_inputs_may_be_absent(self, registry, harness):
        class Maybe:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {}, "optional": {"value": ("INT",)}}
            RETURN_TYPES = ()
            FUNCTION = "run"
            OUTPUT_NODE = True

        harness.add(Maybe)
        assert validate_prompt(registry, {"1": {"class_type": "Maybe", "inputs": {}}}).ok


class TestTypeMatching:
    def test_equal_types_match(self):
        assert types_compatible("IMAGE", "IMAGE")

    def test_comma_separated_types_match_on_any_overlap(self):
        assert types_compatible("INT", "FLOAT,INT")
        assert types_compatible("FLOAT, INT", "INT")
        assert not types_compatible("STRING", "FLOAT,INT")

    def test_plain_star_string_gets_no_special_case(self):
        assert not types_compatible("IMAGE", "*")
        assert not types_compatible("*", "IMAGE")

    def test_received_type_with_custom_ne_matches_anything(self):
        assert types_compatible(AnyType("*"), "IMAGE")

    def test_combo_lists_compare_by_equality(self):
        assert types_compatible(["a", "b"], ["a", "b"])
        assert not types_compatible(["a"], "STRING")


class TestValidateInputs:
    def make(self, harness, validate):
        class Custom:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"value": ("INT", {"min": 0, "max": 10}), "link": ("INT",)}}
            RETURN_TYPES = ()
            FUNCTION = "run"
            OUTPUT_NODE = True
            VALIDATE_INPUTS = classmethod(validate)

        harness.add(Custom)

    def test_string_result_is_custom_validation_failed_with_details(self, registry, harness):
        seen = {}

        def validate(cls, value, link):
            seen.update(value=value, link=link)
            return "value must be even"

        self.make(harness, validate)
        result = validate_prompt(registry, {"1": const(1), "2": {"class_type": "Custom", "inputs": {"value": 3, "link": ["1", 0]}}})
        assert seen == {"value": 3, "link": None}  # constants only; links arrive as None
        assert only_error(result, "2") == {
            "type": "custom_validation_failed", "message": "Custom validation failed for node",
            "details": "value must be even", "extra_info": {},
        }

    def test_its_parameters_skip_range_checks(self, registry, harness):
        self.make(harness, lambda cls, value: True)
        assert validate_prompt(registry, {"1": const(1), "2": {"class_type": "Custom", "inputs": {"value": 99, "link": ["1", 0]}}}).ok

    def test_kwargs_skip_range_checks_for_every_input(self, registry, harness):
        self.make(harness, lambda cls, **kwargs: True)
        assert validate_prompt(registry, {"1": const(1), "2": {"class_type": "Custom", "inputs": {"value": 99, "link": ["1", 0]}}}).ok

    def test_other_inputs_are_still_range_checked(self, registry, harness):
        self.make(harness, lambda cls, link: True)
        result = validate_prompt(registry, {"1": const(1), "2": {"class_type": "Custom", "inputs": {"value": 99, "link": ["1", 0]}}})
        assert only_error(result, "2")["type"] == "value_bigger_than_max"

    def test_input_types_argument_skips_the_link_type_check_and_receives_types(self, registry, harness):
        received = {}

        class MakeText:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {}}
            RETURN_TYPES = ("STRING",)
            FUNCTION = "run"

        def validate(cls, input_types):
            received.update(input_types)
            return True

        harness.add(MakeText)
        self.make(harness, validate)
        prompt = {"1": {"class_type": "MakeText", "inputs": {}}, "2": {"class_type": "Custom", "inputs": {"value": 1, "link": ["1", 0]}}}
        assert validate_prompt(registry, prompt).ok
        assert received == {"link": "STRING"}

    def test_raising_validator_is_exception_during_validation(self, registry, harness):
        def validate(cls, value):
            raise RuntimeError("broken validator")

        self.make(harness, validate)
        result = validate_prompt(registry, {"1": const(1), "2": {"class_type": "Custom", "inputs": {"value": 1, "link": ["1", 0]}}})
        error = only_error(result, "2")
        assert error["type"] == "exception_during_validation"
        assert error["message"] == "Exception when validating node"
        assert error["details"] == "broken validator"
        assert error["extra_info"]["exception_type"] == "RuntimeError"
        assert isinstance(error["extra_info"]["traceback"], list)

    def test_raising_upstream_node_is_exception_during_inner_validation(self, registry, harness):
        class Broken:
            @classmethod
            def INPUT_TYPES(cls):
                raise OSError("cannot list files")
            RETURN_TYPES = ("INT",)
            FUNCTION = "run"

        harness.add(Broken)
        result = validate_prompt(registry, {"1": {"class_type": "Broken", "inputs": {}}, "2": show("1")})
        error = only_error(result, "1")
        assert error["type"] == "exception_during_inner_validation"
        assert error["details"] == "cannot list files"
        assert error["extra_info"]["exception_type"] == "OSError"
        assert error["extra_info"]["linked_node"] == ["1", 0]
        assert error["extra_info"]["input_name"] == "value"
        assert "2" not in result.node_errors


class TestGraphShape:
    def test_a_cycle_is_reported_on_the_node_that_closes_it(self, registry):
        prompt = {"1": add(["2", 0], 1), "2": add(["1", 0], 1), "3": show("2")}
        result = validate_prompt(registry, prompt)
        assert result.ok is False
        (node_id, entry), = result.node_errors.items()
        error = entry["errors"][0]
        assert error["type"] == "dependency_cycle"
        assert error["details"] in ("2 -> 1 -> 2", "1 -> 2 -> 1")

    def test_a_long_chain_validates_without_recursion_limits(self, registry):
        prompt = {"0": const(0)}
        for index in range(1, 3000):
            prompt[str(index)] = add([str(index - 1), 0], 1)
        prompt["out"] = show("2999")
        assert validate_prompt(registry, prompt).ok

    def test_link_to_a_missing_node_is_an_exception_during_validation(self, registry):
        result = validate_prompt(registry, {"1": show("99")})
        error = only_error(result, "1")
        assert error["type"] == "exception_during_validation"
        assert "99" in error["details"]

    def test_each_node_is_validated_once(self, registry, harness):
        calls = []

        class Counted:
            @classmethod
            def INPUT_TYPES(cls):
                calls.append(1)
                return {"required": {}}
            RETURN_TYPES = ("INT",)
            FUNCTION = "run"

        harness.add(Counted)
        prompt = {"1": {"class_type": "Counted", "inputs": {}}, "2": show("1"), "3": show("1")}
        assert validate_prompt(registry, prompt).ok
        assert len(calls) == 1
