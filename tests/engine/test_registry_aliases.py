"""Legacy keys: registry aliases resolve in prompts but never show in /object_info.

Workflows in the wild name ConditioningAverage ``"ConditioningAverage "`` (trailing space);
nodes/conditioning.py declares that alias in ``NODE_CLASS_ALIASES``.
"""

from __future__ import annotations

import importlib

import pytest

from engine.registry import NodeRegistry
from engine.validation import validate_prompt
from tests.helpers.engine_harness import Harness

LEGACY_KEY = "ConditioningAverage "


class Target:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self):
        return (1,)


def builtin_registry() -> NodeRegistry:
    """The built-ins registered the way server.py does: mappings and display names only."""
    import nodes

    registry = NodeRegistry()
    for module_name in nodes.BUILTIN_MODULES:
        module = importlib.import_module(module_name)
        registry.add_module(module.NODE_CLASS_MAPPINGS, getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None),
                            module_name, True)
    return registry


class TestAddAlias:
    def test_an_alias_resolves_to_its_class_but_is_not_listed(self):
        registry = NodeRegistry()
        registry.add_module({"Target": Target}, None, "tests.target", True)
        registry.add_alias("Target ", "Target")
        assert registry.get("Target ") is Target and "Target " in registry
        assert list(registry.object_info()) == ["Target"]
        assert "Other" not in registry and registry.get("Other") is None

    def test_an_alias_must_name_a_registered_class_and_not_shadow_one(self):
        registry = NodeRegistry()
        registry.add_module({"Target": Target, "Other": Target}, None, "tests.target", True)
        with pytest.raises(KeyError):
            registry.add_alias("Missing ", "Missing")
        with pytest.raises(ValueError):
            registry.add_alias("Other", "Target")

    def test_aliases_can_be_passed_to_add_module(self):
        registry = NodeRegistry()
        registry.add_module({"Target": Target}, None, "tests.target", True, aliases={"OldTarget": "Target"})
        assert registry.get("OldTarget") is Target

    def test_a_plugin_cannot_take_over_a_builtin_alias(self):
        registry = NodeRegistry()
        registry.add_module({"Target": Target}, None, "tests.target", True, aliases={"OldTarget": "Target"})

        class Intruder(Target):
            pass

        assert registry.add_module({"OldTarget": Intruder}, None, "custom_nodes.intruder", False) == []
        assert registry.get("OldTarget") is Target


class TestConditioningAverageLegacyKey:
    def test_the_builtin_module_declares_the_alias(self):
        registry = builtin_registry()
        assert registry.get(LEGACY_KEY) is registry.get("ConditioningAverage")
        info = registry.object_info()
        assert "ConditioningAverage" in info and LEGACY_KEY not in info

    def test_a_prompt_using_the_legacy_key_validates_and_runs(self):
        import torch
        from nodes.conditioning import NODE_CLASS_ALIASES, NODE_CLASS_MAPPINGS

        class FixedConditioning:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"value": ("FLOAT", {"default": 0.0})}}

            RETURN_TYPES = ("CONDITIONING",)
            FUNCTION = "make"

            def make(self, value):
                return ([[torch.full((1, 2, 3), value), {}]],)

        class ConditioningMean:
            @classmethod
            def INPUT_TYPES(cls):
                return {"required": {"conditioning": ("CONDITIONING",)}}

            RETURN_TYPES = ()
            OUTPUT_NODE = True
            FUNCTION = "show"

            def show(self, conditioning):
                return {"ui": {"mean": [float(conditioning[0][0].mean())]}}

        harness = Harness()
        harness.registry.add_module({"ConditioningAverage": NODE_CLASS_MAPPINGS["ConditioningAverage"]}, None,
                                    "nodes.conditioning", True, aliases=NODE_CLASS_ALIASES)
        harness.add(FixedConditioning, ConditioningMean)
        prompt = {
            "to": {"class_type": "FixedConditioning", "inputs": {"value": 1.0}},
            "from": {"class_type": "FixedConditioning", "inputs": {"value": 0.0}},
            "avg": {"class_type": LEGACY_KEY, "inputs": {
                "conditioning_to": ["to", 0], "conditioning_from": ["from", 0], "conditioning_to_strength": 0.25}},
            "out": {"class_type": "ConditioningMean", "inputs": {"conditioning": ["avg", 0]}},
        }
        assert validate_prompt(harness.registry, prompt).ok
        run = harness.run(prompt)
        assert run.result.status_str == "success", run.sink.of("execution_error")
        assert run.result.outputs["out"]["mean"] == [pytest.approx(0.25)]
