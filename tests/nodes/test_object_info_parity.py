"""Every built-in node that ComfyUI also has describes itself exactly as ComfyUI does.

The reference is ComfyUI's own ``/object_info`` (tests/fixtures/comfyui-object-info.json,
a copy of docs/comfyui-object-info.json). Our side goes through ``NodeRegistry.node_info``,
the code that serves ``/object_info``, so this is what the editor and API clients see.

Compared (comfy-compat §1.7, §4.4, §7.1): ``input_order`` per section, each input's type and
every option key ComfyUI sets (default, min, max, step, round, multiline, tooltip,
image_upload, ...), outputs, output names, ``output_is_list``, category, ``output_node``,
display name, description, output tooltips, deprecated/experimental flags.

Two serialisations mean the same and are compared as equal: a V1 combo ``[[options...]]`` and
a V3 ``["COMBO", {"options": [...], "multiselect": false}]``; ``["IMAGE", {}]`` and
``["IMAGE"]``. Combo lists filled from folders or from the models present are compared only
for being lists (see :func:`is_folder_combo`); sampler and scheduler lists may be the ordered
part of ComfyUI's that Kiln implements (:data:`PARTIAL_COMBOS`); other fixed lists such as
upscale methods must be equal, order included, since editor defaults and workflows use them.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from engine.registry import NodeRegistry
from nodes import BUILTIN_MODULES

COMFYUI_OBJECT_INFO = Path(__file__).parents[1] / "fixtures" / "comfyui-object-info.json"

# Combos whose entries depend on the files or models a server has, and that the file-name
# heuristic of is_folder_combo cannot recognise (their reference value has no extension).
FOLDER_COMBOS = {
    ("VAELoader", "vae_name"): "vae files, plus taesd* when both halves are in vae_approx, plus pixel_space",
    ("LoadImageSetFromFolderNode", "folder"): "subfolders of input/",
    ("LoadImageTextSetFromFolderNode", "folder"): "subfolders of input/",
}
# Fixed lists of which Kiln may offer only the part it implements: ours must be a non-empty
# ordered subset of ComfyUI's, so no invented names and the same relative order. Keyed by
# input name, as the lists are shared by every node that has such an input.
PARTIAL_COMBOS = {
    "sampler_name": "Kiln lists the samplers it implements (diffusion.sampling.names)",
    "scheduler": "Kiln lists the schedules it implements (diffusion.sampling.names)",
}
FILE_NAME = re.compile(r"\.[A-Za-z0-9]{2,12}$")
# Option keys we may add on top of ComfyUI's spec without changing widgets or validation.
ALLOWED_EXTRA_OPTIONS = frozenset({"tooltip"})
SECTIONS = ("required", "optional", "hidden")
MISSING = "<missing>"


def comfyui_object_info() -> dict[str, dict]:
    return json.loads(COMFYUI_OBJECT_INFO.read_text(encoding="utf-8"))


def builtin_registry() -> NodeRegistry:
    registry = NodeRegistry()
    for module_name in BUILTIN_MODULES:
        module = importlib.import_module(module_name)
        registry.add_module(
            module.NODE_CLASS_MAPPINGS, getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None), module_name, builtin=True
        )
    return registry


def shared_node_names() -> list[tuple[str, str]]:
    """(module, class_type) of every built-in node that ComfyUI also defines."""
    reference = comfyui_object_info()
    pairs = []
    for module_name in BUILTIN_MODULES:
        module = importlib.import_module(module_name)
        pairs.extend((module_name, name) for name in module.NODE_CLASS_MAPPINGS if name in reference)
    return pairs


def normalized_input(spec: Any) -> tuple[Any, dict]:
    """``(type, options)`` with V3 combos folded into V1 form and V3's ``multiselect: false`` dropped."""
    if isinstance(spec, str):
        return spec, {}
    input_type = spec[0]
    options = dict(spec[1]) if len(spec) > 1 and spec[1] is not None else {}
    if input_type == "COMBO" and "options" in options:
        input_type = options.pop("options")
    if options.get("multiselect") is False:
        del options["multiselect"]
    return input_type, options


def is_folder_combo(class_type: str, input_name: str, reference_choices: list) -> bool:
    """Whether a combo's entries depend on the server's files (empty or file-like in the reference)."""
    if (class_type, input_name) in FOLDER_COMBOS or not reference_choices:
        return True
    return any(isinstance(choice, str) and FILE_NAME.search(choice) for choice in reference_choices)


def is_ordered_subset(ours: list, theirs: list) -> bool:
    """Whether ``ours`` is non-empty and every entry appears in ``theirs``, in the same order."""
    remaining = iter(theirs)
    return bool(ours) and all(choice in remaining for choice in ours)


def input_differences(class_type: str, where: str, ours: Any, theirs: Any) -> list[str]:
    """Differences of one input spec, each a line naming the input and both values."""
    our_type, our_options = normalized_input(ours)
    their_type, their_options = normalized_input(theirs)
    input_name = where.split(".")[-1]
    folder_combo = isinstance(their_type, list) and is_folder_combo(class_type, input_name, their_type)
    problems = []
    if isinstance(their_type, list):
        if not isinstance(our_type, list):
            problems.append(f"{where}: type is {our_type!r}, ComfyUI has a combo list")
        elif input_name in PARTIAL_COMBOS:
            if not is_ordered_subset(our_type, their_type):
                problems.append(
                    f"{where}: combo choices {our_type!r} are not an ordered part of ComfyUI's {their_type!r}"
                )
        elif not folder_combo and our_type != their_type:
            problems.append(f"{where}: combo choices {our_type!r} != ComfyUI's {their_type!r}")
    elif our_type != their_type:
        problems.append(f"{where}: type {our_type!r} != ComfyUI's {their_type!r}")
    for key, their_value in their_options.items():
        if folder_combo and key == "default":
            continue
        our_value = our_options.get(key, MISSING)
        # 1 == True in Python, but the editor treats a JSON 1 and true differently.
        if our_value != their_value or isinstance(our_value, bool) != isinstance(their_value, bool):
            problems.append(f"{where}: option {key!r} is {our_value!r}, ComfyUI has {their_value!r}")
    for key in sorted(set(our_options) - set(their_options) - ALLOWED_EXTRA_OPTIONS):
        problems.append(f"{where}: option {key!r}={our_options[key]!r} is not in ComfyUI's spec")
    return problems


def node_differences(class_type: str, ours: dict, theirs: dict) -> list[str]:
    """Every way our /object_info entry differs from ComfyUI's, one line each."""
    problems = []
    for section in SECTIONS:
        our_order = ours["input_order"].get(section, [])
        their_order = theirs["input_order"].get(section, [])
        if our_order != their_order:
            problems.append(f"input_order.{section}: {our_order} != ComfyUI's {their_order}")
        our_inputs = ours["input"].get(section, {})
        for name, their_spec in theirs["input"].get(section, {}).items():
            if name not in our_inputs:
                problems.append(f"{section}.{name}: missing (ComfyUI: {their_spec!r})")
                continue
            problems.extend(input_differences(class_type, f"{section}.{name}", our_inputs[name], their_spec))
    for key in ("output", "output_name", "output_is_list", "category", "output_node"):
        if ours.get(key) != theirs.get(key):
            problems.append(f"{key}: {ours.get(key)!r} != ComfyUI's {theirs.get(key)!r}")
    # V3 nodes without a display name report null; the editor then shows the class name.
    if theirs.get("display_name") is not None and ours["display_name"] != theirs["display_name"]:
        problems.append(f"display_name: {ours['display_name']!r} != ComfyUI's {theirs['display_name']!r}")
    if theirs.get("description") and ours.get("description") != theirs["description"]:
        problems.append(f"description: {ours.get('description')!r} != ComfyUI's {theirs['description']!r}")
    their_tooltips = theirs.get("output_tooltips") or []
    if any(tooltip is not None for tooltip in their_tooltips) and ours.get("output_tooltips") != their_tooltips:
        problems.append(f"output_tooltips: {ours.get('output_tooltips')!r} != ComfyUI's {their_tooltips!r}")
    for flag in ("deprecated", "experimental"):
        if bool(ours.get(flag)) != bool(theirs.get(flag)):
            problems.append(f"{flag}: {bool(ours.get(flag))} != ComfyUI's {bool(theirs.get(flag))}")
    return problems


@pytest.fixture(scope="module")
def reference() -> dict[str, dict]:
    return comfyui_object_info()


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    return builtin_registry()


@pytest.mark.parametrize("module_name, class_type", shared_node_names(), ids=lambda value: value)
def test_node_info_matches_comfyui(module_name, class_type, registry, reference, node_context):
    ours = registry.node_info(class_type)
    problems = node_differences(class_type, ours, reference[class_type])
    listing = "\n  ".join(problems)
    assert not problems, f"{class_type} ({module_name}) differs from ComfyUI's /object_info:\n  {listing}"


def test_every_builtin_module_exports_its_mappings():
    for module_name in BUILTIN_MODULES:
        module = importlib.import_module(module_name)
        assert isinstance(module.NODE_CLASS_MAPPINGS, dict), module_name
        unknown = set(getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", {})) - set(module.NODE_CLASS_MAPPINGS)
        assert not unknown, f"{module_name}: display names for unknown classes {sorted(unknown)}"


def test_builtin_class_names_are_unique_across_modules():
    owners: dict[str, list[str]] = {}
    for module_name in BUILTIN_MODULES:
        for name in importlib.import_module(module_name).NODE_CLASS_MAPPINGS:
            owners.setdefault(name, []).append(module_name)
    clashes = {name: modules for name, modules in owners.items() if len(modules) > 1}
    assert not clashes, f"class_type defined by several built-in modules: {clashes}"


class TestTheComparisonItself:
    """The checker must notice real differences and accept equivalent serialisations."""

    def test_v3_combo_equals_v1_combo(self):
        v3 = ["COMBO", {"multiselect": False, "options": ["a", "b"]}]
        assert input_differences("X", "required.mode", [["a", "b"]], v3) == []

    def test_fixed_combo_must_match_in_order(self):
        problems = input_differences("X", "required.mode", [["b", "a"]], [["a", "b"]])
        assert problems == ["required.mode: combo choices ['b', 'a'] != ComfyUI's ['a', 'b']"]

    def test_file_combo_only_needs_to_be_a_list(self):
        assert input_differences("X", "required.ckpt_name", [[]], [["sd15.safetensors"]]) == []
        assert input_differences("VAELoader", "required.vae_name", [["a.pt"]], [["pixel_space"]]) == []
        assert input_differences("X", "required.ckpt_name", ["STRING"], [["sd15.safetensors"]]) == [
            "required.ckpt_name: type is 'STRING', ComfyUI has a combo list"
        ]

    def test_sampler_lists_may_be_an_ordered_part_of_comfyuis(self):
        theirs = [["euler", "euler_cfg_pp", "heun", "ddim"]]
        assert input_differences("KSampler", "required.sampler_name", [["euler", "ddim"]], theirs) == []
        assert input_differences("KSampler", "required.sampler_name", [["ddim", "euler"]], theirs) == [
            "required.sampler_name: combo choices ['ddim', 'euler'] are not an ordered part of ComfyUI's "
            "['euler', 'euler_cfg_pp', 'heun', 'ddim']"
        ]
        assert input_differences("KSampler", "required.sampler_name", [["euler", "my_sampler"]], theirs) != []

    def test_option_values_and_extra_keys_are_reported(self):
        ours = ["INT", {"default": 8, "min": 0, "display": "slider"}]
        theirs = ["INT", {"default": 8, "min": 1}]
        assert input_differences("X", "required.steps", ours, theirs) == [
            "required.steps: option 'min' is 0, ComfyUI has 1",
            "required.steps: option 'display'='slider' is not in ComfyUI's spec",
        ]

    def test_true_is_not_one(self):
        problems = input_differences("X", "required.t", ["STRING", {"multiline": 1}], ["STRING", {"multiline": True}])
        assert problems == ["required.t: option 'multiline' is 1, ComfyUI has True"]

    def test_order_outputs_and_category_are_reported(self):
        theirs = {
            "input": {"required": {"a": ["INT"], "b": ["INT"]}},
            "input_order": {"required": ["a", "b"]},
            "output": ["IMAGE"],
            "output_name": ["IMAGE"],
            "output_is_list": [False],
            "category": "image",
            "output_node": False,
            "display_name": "Thing",
        }
        ours = dict(theirs, input_order={"required": ["b", "a"]}, category="images", display_name="thing")
        assert node_differences("X", ours, theirs) == [
            "input_order.required: ['b', 'a'] != ComfyUI's ['a', 'b']",
            "category: 'images' != ComfyUI's 'image'",
            "display_name: 'thing' != ComfyUI's 'Thing'",
        ]
