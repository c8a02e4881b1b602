"""The node registry and its /object_info entries (comfy-compat §1.7)."""

from __future__ import annotations

import json
import logging
import pathlib

from engine.registry import NodeRegistry

REPO = pathlib.Path(__file__).resolve().parents[2]
REFERENCE = REPO / "tests" / "fixtures" / "comfyui-object-info.json"


class SaveImage:
    """Written to the spec of ComfyUI's SaveImage, to compare with the recorded entry."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The images to save."}),
                "filename_prefix": ("STRING", {"default": "ComfyUI", "tooltip": (
                    "The prefix for the file to save. This may include formatting information such as "
                    "%date:yyyy-MM-dd% or %Empty Latent Image.width% to include values from nodes.")}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    RETURN_TYPES = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    CATEGORY = "image"
    DESCRIPTION = "Saves the input images to your ComfyUI output directory."


class Minimal:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 1}), "mode": (["a", "b"],)}, "optional": {"mask": ("MASK",)}}

    RETURN_TYPES = ("INT", "STRING")
    FUNCTION = "run"


class Flagged:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("samples",)
    OUTPUT_TOOLTIPS = ("The samples.",)
    OUTPUT_IS_LIST = (True,)
    DEPRECATED = True
    EXPERIMENTAL = True
    FUNCTION = "run"


class Broken:
    @classmethod
    def INPUT_TYPES(cls):
        raise RuntimeError("plugin bug")

    RETURN_TYPES = ()
    FUNCTION = "run"


def test_node_info_matches_comfyui_for_save_image():
    registry = NodeRegistry()
    registry.add_module({"SaveImage": SaveImage}, {"SaveImage": "Save Image"}, "nodes", builtin=True)
    reference = json.loads(REFERENCE.read_text())["SaveImage"]
    assert registry.node_info("SaveImage") == reference


def test_defaults_for_a_minimal_class():
    registry = NodeRegistry()
    registry.add_module({"Minimal": Minimal}, None, "custom_nodes.pack", builtin=False)
    info = registry.node_info("Minimal")
    assert info == {
        "input": {"required": {"value": ["INT", {"default": 1}], "mode": [["a", "b"]]}, "optional": {"mask": ["MASK"]}},
        "input_order": {"required": ["value", "mode"], "optional": ["mask"]},
        "output": ["INT", "STRING"],
        "output_is_list": [False, False],
        "output_name": ["INT", "STRING"],
        "name": "Minimal",
        "display_name": "Minimal",
        "description": "",
        "python_module": "custom_nodes.pack",
        "category": "sd",
        "output_node": False,
    }
    assert json.loads(json.dumps(info)) == info  # tuples already became lists


def test_optional_keys_appear_when_set():
    registry = NodeRegistry()
    registry.add_module({"Flagged": Flagged}, None, "nodes", builtin=True)
    info = registry.node_info("Flagged")
    assert (info["output_name"], info["output_is_list"], info["output_tooltips"]) == (["samples"], [True], ["The samples."])
    assert info["deprecated"] is True and info["experimental"] is True


def test_a_class_whose_input_types_raises_is_left_out_and_logged(caplog):
    registry = NodeRegistry()
    registry.add_module({"Minimal": Minimal, "Broken": Broken}, None, "x", builtin=False)
    with caplog.at_level(logging.ERROR):
        assert list(registry.object_info()) == ["Minimal"]
    assert "Broken" in caplog.text


def test_plugins_cannot_override_builtin_names(caplog):
    registry = NodeRegistry()
    assert registry.add_module({"Minimal": Minimal}, None, "nodes", builtin=True) == ["Minimal"]
    with caplog.at_level(logging.WARNING):
        added = registry.add_module({"Minimal": Flagged, "Flagged": Flagged}, {"Minimal": "Hijack"}, "custom_nodes.evil", builtin=False)
    assert added == ["Flagged"]
    assert registry.get("Minimal") is Minimal
    assert registry.node_info("Minimal")["display_name"] == "Minimal"
    assert "Minimal" in caplog.text


def test_a_later_plugin_may_replace_an_earlier_plugin_node():
    registry = NodeRegistry()
    registry.add_module({"Thing": Minimal}, None, "custom_nodes.a", builtin=False)
    registry.add_module({"Thing": Flagged}, None, "custom_nodes.b", builtin=False)
    assert registry.get("Thing") is Flagged
    assert registry.node_info("Thing")["python_module"] == "custom_nodes.b"


def test_lookup():
    registry = NodeRegistry()
    registry.add_module({"Minimal": Minimal}, None, "nodes", builtin=True)
    assert "Minimal" in registry and "Other" not in registry
    assert registry.get("Other") is None
