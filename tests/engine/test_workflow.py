"""engine.workflow: UI workflow -> API prompt, as the frontend's graphToPrompt (comfy-compat §4).

The fixtures in tests/fixtures/workflows/ pair a UI workflow (``<name>.json``) with the API
prompt the ComfyUI frontend would queue for it (``<name>.api.json``), written by hand from
§4.4-§4.5 against the real node specs in tests/fixtures/comfyui-object-info.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.workflow import (
    WorkflowError,
    compile_workflow,
    is_api_prompt,
    is_ui_workflow,
    types_compatible,
    widget_entries,
    widget_inputs,
)

FIXTURES = Path(__file__).parents[1] / "fixtures"
WORKFLOWS = FIXTURES / "workflows"
FIXTURE_NAMES = sorted(path.name.removesuffix(".api.json") for path in WORKFLOWS.glob("*.api.json"))


@pytest.fixture(scope="module")
def object_info() -> dict:
    return json.loads((FIXTURES / "comfyui-object-info.json").read_text(encoding="utf-8"))


def load(name: str) -> tuple[dict, dict]:
    workflow = json.loads((WORKFLOWS / f"{name}.json").read_text(encoding="utf-8"))
    expected = json.loads((WORKFLOWS / f"{name}.api.json").read_text(encoding="utf-8"))
    return workflow, expected


def test_fixture_set_covers_the_required_cases():
    required = {
        "default_text_to_image", "bypass", "mute", "primitive", "reroute_node", "native_reroute",
        "converted_widget", "load_image_upload", "version1_links_as_objects", "subgraph_nested",
    }
    assert required <= set(FIXTURE_NAMES)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_compiles_to_its_expected_api_prompt(name: str, object_info: dict):
    workflow, expected = load(name)
    assert compile_workflow(workflow, object_info) == expected


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_formats_are_detected(name: str):
    workflow, expected = load(name)
    assert is_ui_workflow(workflow) and not is_api_prompt(workflow)
    assert is_api_prompt(expected) and not is_ui_workflow(expected)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_expected_prompts_only_link_to_their_own_nodes(name: str):
    _, expected = load(name)
    for node in expected.values():
        for value in node["inputs"].values():
            if isinstance(value, list):
                assert value[0] in expected


def test_compiled_prompt_survives_a_json_round_trip(object_info: dict):
    workflow, _ = load("default_text_to_image")
    prompt = compile_workflow(workflow, object_info)
    assert json.loads(json.dumps(prompt)) == prompt


# -- widgets_values layout (§4.4) ------------------------------------------------------------


def names(entries) -> list[str]:
    return [entry.name for entry in entries]


def test_ksampler_layout_has_the_hidden_control_entry_after_seed(object_info: dict):
    assert names(widget_entries(object_info["KSampler"])) == [
        "seed", "control_after_generate", "steps", "cfg", "sampler_name", "scheduler", "denoise",
    ]


def test_ksampler_advanced_layout(object_info: dict):
    assert names(widget_entries(object_info["KSamplerAdvanced"])) == [
        "add_noise", "noise_seed", "control_after_generate", "steps", "cfg", "sampler_name", "scheduler",
        "start_at_step", "end_at_step", "return_with_leftover_noise",
    ]


def test_image_upload_combo_is_followed_by_the_upload_entry(object_info: dict):
    assert names(widget_entries(object_info["LoadImage"])) == ["image", "upload"]
    assert names(widget_entries(object_info["LoadImageMask"])) == ["image", "upload", "channel"]


@pytest.mark.parametrize(
    ("class_type", "widgets_values", "expected"),
    [
        ("CheckpointLoaderSimple", ["x.safetensors"], {"ckpt_name": "x.safetensors"}),
        ("CLIPTextEncode", ["text"], {"text": "text"}),
        ("EmptyLatentImage", [512, 512, 1], {"width": 512, "height": 512, "batch_size": 1}),
        ("LoraLoader", ["x.safetensors", 1, 1], {"lora_name": "x.safetensors", "strength_model": 1, "strength_clip": 1}),
        ("SaveImage", ["ComfyUI"], {"filename_prefix": "ComfyUI"}),
        ("VAEDecode", [], {}),
        ("LoadImage", ["example.png", "image"], {"image": "example.png"}),
    ],
)
def test_canonical_widgets_values(object_info: dict, class_type: str, widgets_values: list, expected: dict):
    assert widget_inputs({"type": class_type, "widgets_values": widgets_values}, object_info[class_type]) == expected


def test_missing_widgets_values_key_is_an_empty_list(object_info: dict):
    assert widget_inputs({"type": "VAEDecode"}, object_info["VAEDecode"]) == {}


FAKE_INFO = {
    "Legacy": {
        "input": {
            "required": {
                "seed": ["INT", {"default": 0}],
                "noise_seed": ["INT", {"default": 0}],
                "count": ["INT", {"default": 3, "control_after_generate": True}],
                "mode": [["a", "b"], {"control_after_generate": "fixed"}],
                "pipe": ["STRING", {"forceInput": True}],
                "model": ["MODEL"],
                "strength": ["FLOAT", {"default": 0.5}],
            },
            "optional": {"flag": ["BOOLEAN", {"default": True}], "choice": ["COMBO", {"options": ["x", "y"]}]},
        },
        "input_order": {
            "required": ["seed", "noise_seed", "count", "mode", "pipe", "model", "strength"],
            "optional": ["flag", "choice"],
        },
        "display_name": "Legacy Node",
        "output": ["MODEL"],
    },
    "Sink": {
        "input": {"required": {"model": ["MODEL"], "values": ["FLOATS", {}]}, "optional": {"anything": ["*", {}]}},
        "input_order": {"required": ["model", "values"], "optional": ["anything"]},
        "display_name": "Sink",
        "output": [],
        "output_node": True,
    },
    "Source": {
        "input": {"required": {}},
        "input_order": {"required": []},
        "display_name": "Source",
        "output": ["MODEL", "IMAGE"],
    },
    "Pass": {
        "input": {"required": {"image": ["IMAGE"], "model": ["MODEL"]}},
        "input_order": {"required": ["image", "model"]},
        "display_name": "Pass",
        "output": ["MODEL"],
    },
}


def test_legacy_seed_names_control_flags_and_force_input():
    assert names(widget_entries(FAKE_INFO["Legacy"])) == [
        "seed", "control_after_generate", "noise_seed", "control_after_generate", "count",
        "control_after_generate", "mode", "control_after_generate", "strength", "flag", "choice",
    ]


def test_widgets_values_skip_control_entries_only_when_present():
    with_controls = [7, "fixed", 8, "increment", 9, "decrement", "b", "randomize", 0.25, False, "y"]
    without_controls = [7, 8, 9, "b", 0.25, False, "y"]
    expected = {"seed": 7, "noise_seed": 8, "count": 9, "mode": "b", "strength": 0.25, "flag": False, "choice": "y"}
    assert widget_inputs({"widgets_values": with_controls}, FAKE_INFO["Legacy"]) == expected
    assert widget_inputs({"widgets_values": without_controls}, FAKE_INFO["Legacy"]) == expected


def test_short_widgets_values_fall_back_to_widget_defaults():
    assert widget_inputs({"widgets_values": [7, "fixed"]}, FAKE_INFO["Legacy"]) == {
        "seed": 7, "noise_seed": 0, "count": 3, "mode": "a", "strength": 0.5, "flag": True, "choice": "x",
    }


def test_widgets_values_keyed_by_name():
    node = {"widgets_values": {"strength": 0.9, "seed": 3, "control_after_generate": "fixed", "unrelated": 1}}
    assert widget_inputs(node, FAKE_INFO["Legacy"]) == {
        "seed": 3, "noise_seed": 0, "count": 3, "mode": "a", "strength": 0.9, "flag": True, "choice": "x",
    }


def test_slots_marked_as_widgets_make_custom_widget_types_count():
    node = {"inputs": [{"name": "values", "type": "FLOATS", "widget": {"name": "values"}, "link": None}],
            "widgets_values": [[0.1, 0.2]]}
    assert widget_inputs(node, FAKE_INFO["Sink"]) == {"values": [0.1, 0.2]}


# -- graph rules with small hand-made workflows -----------------------------------------------


def ui(nodes: list[dict], links: list) -> dict:
    return {"last_node_id": 99, "last_link_id": 99, "nodes": nodes, "links": links, "version": 0.4}


def test_array_widget_values_are_wrapped():
    workflow = ui([{"id": 1, "type": "Sink", "mode": 0, "inputs": [
        {"name": "values", "type": "FLOATS", "widget": {"name": "values"}, "link": None}], "widgets_values": [["1", 2]]}], [])
    assert compile_workflow(workflow, FAKE_INFO)["1"]["inputs"] == {"values": {"__value__": ["1", 2]}}


def test_unknown_node_type_names_the_node():
    workflow = ui([{"id": 12, "type": "NoSuchNode", "mode": 0}], [])
    with pytest.raises(WorkflowError, match=r"node 12 .*'NoSuchNode'"):
        compile_workflow(workflow, FAKE_INFO)


def test_muted_or_bypassed_unknown_nodes_are_not_errors():
    workflow = ui([{"id": 1, "type": "Gone", "mode": 2}, {"id": 2, "type": "Gone", "mode": 4}], [])
    assert compile_workflow(workflow, FAKE_INFO) == {}


def test_malformed_slot_index_names_the_link():
    workflow = ui([{"id": 1, "type": "Source", "mode": 0}], [[7, 1, "first", 2, 0, "MODEL"]])
    with pytest.raises(WorkflowError, match="link 7"):
        compile_workflow(workflow, FAKE_INFO)


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        (["not a node"], r"node #0 is not an object"),
        ([{"type": "Sink", "mode": 0}], r"node #0 has no valid 'id'"),
        ([{"id": 3, "type": "Sink", "mode": 0, "inputs": {"a": 1}}], r"node 3: 'inputs' must be a list"),
        ([{"id": 3, "type": "Sink", "mode": 0, "outputs": ["x"]}], r"node 3: 'outputs' must be a list"),
        ([{"id": 3, "type": "Sink", "mode": 0, "inputs": [{"name": "a", "widget": "a"}]}], r"node 3: slot 'a' has a malformed 'widget'"),
        ([{"id": 3, "type": "Sink", "mode": 0, "widgets_values": 5}], r"node 3: 'widgets_values' must be a list or an object"),
        ([{"id": 3, "type": ["Sink"], "mode": 0}], r"node 3: 'type' must be a string"),
    ],
)
def test_malformed_shapes_name_the_part_that_is_wrong(nodes: list, message: str):
    with pytest.raises(WorkflowError, match=message):
        compile_workflow(ui(nodes, []), FAKE_INFO)


def test_malformed_link_list_is_refused():
    with pytest.raises(WorkflowError, match="'links' must be a list"):
        compile_workflow({"nodes": [], "links": {"1": [1, 1, 0, 2, 0]}, "version": 0.4}, FAKE_INFO)


def test_not_a_ui_workflow_is_refused():
    with pytest.raises(WorkflowError):
        compile_workflow({"1": {"class_type": "Sink", "inputs": {}}}, FAKE_INFO)


def bypass_graph(sink_slot_type: str, origin_slot: int, pass_inputs: list[dict]) -> dict:
    return ui(
        [
            {"id": 1, "type": "Source", "mode": 0, "outputs": [{"name": "MODEL", "type": "MODEL", "links": [1]},
                                                              {"name": "IMAGE", "type": "IMAGE", "links": [2]}]},
            {"id": 2, "type": "Pass", "mode": 4, "inputs": pass_inputs,
             "outputs": [{"name": "MODEL", "type": "MODEL", "links": [3]}]},
            {"id": 3, "type": "Sink", "mode": 0, "inputs": [{"name": "model", "type": sink_slot_type, "link": 3}]},
        ],
        [[1, 1, 0, 2, 1, "MODEL"], [2, 1, 1, 2, 0, "IMAGE"], [3, 2, origin_slot, 3, 0, sink_slot_type]],
    )


def test_bypass_prefers_the_first_input_of_exactly_the_wanted_type():
    inputs = [{"name": "image", "type": "IMAGE", "link": 2}, {"name": "model", "type": "MODEL", "link": 1}]
    prompt = compile_workflow(bypass_graph("MODEL", 0, inputs), FAKE_INFO)
    assert prompt["3"]["inputs"]["model"] == ["1", 0]


def test_bypass_uses_the_same_slot_when_its_type_is_compatible():
    inputs = [{"name": "image", "type": "IMAGE,MODEL", "link": 2}, {"name": "model", "type": "MODEL", "link": 1}]
    prompt = compile_workflow(bypass_graph("MODEL", 0, inputs), FAKE_INFO)
    assert prompt["3"]["inputs"]["model"] == ["1", 1]


def test_bypass_falls_back_to_the_first_compatible_input():
    inputs = [{"name": "image", "type": "IMAGE", "link": 2}, {"name": "model", "type": "MODEL,CLIP", "link": 1}]
    prompt = compile_workflow(bypass_graph("MODEL", 0, inputs), FAKE_INFO)
    assert prompt["3"]["inputs"]["model"] == ["1", 0]


def test_bypass_with_a_wildcard_type_takes_the_same_index_else_zero():
    inputs = [{"name": "image", "type": "IMAGE", "link": 2}, {"name": "model", "type": "MODEL", "link": 1}]
    assert compile_workflow(bypass_graph("*", 1, inputs), FAKE_INFO)["3"]["inputs"]["model"] == ["1", 0]
    assert compile_workflow(bypass_graph("*", 5, inputs), FAKE_INFO)["3"]["inputs"]["model"] == ["1", 1]


def test_bypass_without_a_match_drops_the_input():
    inputs = [{"name": "image", "type": "IMAGE", "link": 2}]
    assert "model" not in compile_workflow(bypass_graph("MODEL", 0, inputs), FAKE_INFO)["3"]["inputs"]


def test_bypass_onto_an_unconnected_input_drops_the_input():
    inputs = [{"name": "image", "type": "IMAGE", "link": 2}, {"name": "model", "type": "MODEL", "link": None}]
    assert "model" not in compile_workflow(bypass_graph("MODEL", 0, inputs), FAKE_INFO)["3"]["inputs"]


def test_reroute_cycles_do_not_hang():
    workflow = ui(
        [
            {"id": 1, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": 2}]},
            {"id": 2, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": 1}]},
            {"id": 3, "type": "Sink", "mode": 0, "inputs": [{"name": "model", "type": "MODEL", "link": 1}]},
        ],
        [[1, 2, 0, 1, 0, "*"], [2, 1, 0, 2, 0, "*"], [3, 1, 0, 3, 0, "MODEL"]],
    )
    assert compile_workflow(workflow, FAKE_INFO)["3"]["inputs"] == {}


def test_dangling_links_leave_the_widget_value():
    workflow = ui([{"id": 1, "type": "Sink", "mode": 0, "inputs": [
        {"name": "values", "type": "FLOATS", "widget": {"name": "values"}, "link": 42}], "widgets_values": [[0.5]]}], [])
    assert compile_workflow(workflow, FAKE_INFO)["1"]["inputs"] == {"values": {"__value__": [0.5]}}


def test_numeric_string_slots_and_string_ids_are_normalised():
    workflow = ui(
        [
            {"id": "7", "type": "Source", "mode": 0},
            {"id": 8, "type": "Sink", "mode": 0, "title": "My sink", "inputs": [{"name": "model", "type": "MODEL", "link": 5}]},
        ],
        [[5, "7", "1", 8, "0", "MODEL"]],
    )
    assert compile_workflow(workflow, FAKE_INFO) == {
        "7": {"inputs": {}, "class_type": "Source", "_meta": {"title": "Source"}},
        "8": {"inputs": {"model": ["7", 1]}, "class_type": "Sink", "_meta": {"title": "My sink"}},
    }


@pytest.mark.parametrize(
    ("first", "second", "compatible"),
    [
        ("MODEL", "MODEL", True),
        ("model", "MODEL", True),
        ("MODEL", "CLIP", False),
        ("*", "CLIP", True),
        ("", "CLIP", True),
        ("IMAGE,MASK", "MASK", True),
        ("IMAGE,MASK", "LATENT,CLIP", False),
        (["IMAGE", "MASK"], "MASK", True),
    ],
)
def test_litegraph_type_compatibility(first, second, compatible: bool):
    assert types_compatible(first, second) is compatible


@pytest.mark.parametrize(
    ("candidate", "api", "ui_format"),
    [
        ({"1": {"class_type": "X", "inputs": {}}}, True, False),
        ({"1": {"inputs": {}}}, False, False),
        ({}, False, False),
        ([], False, False),
        ({"nodes": [], "links": []}, False, True),
        ({"nodes": [], "version": 1, "state": {}}, False, True),
        ({"nodes": {}}, False, False),
        ("text", False, False),
    ],
)
def test_format_detection(candidate, api: bool, ui_format: bool):
    assert is_api_prompt(candidate) is api
    assert is_ui_workflow(candidate) is ui_format


# -- subgraphs ---------------------------------------------------------------------------------

SUB = "0b5f6c1e-1111-4a2b-8c3d-123456789abc"


def subgraph_workflow(instance_mode: int, definition_nodes: list[dict] | None = None) -> dict:
    """Source -> [subgraph: Pass(model from input 0) -> output 0] -> Sink, plus a primitive."""
    definition = {
        "id": SUB, "name": "wrapped", "version": 1, "state": {},
        "inputs": [{"id": "i0", "name": "model", "type": "MODEL"}],
        "outputs": [{"id": "o0", "name": "model", "type": "MODEL"}],
        "nodes": definition_nodes or [
            {"id": 1, "type": "Pass", "mode": 0, "inputs": [{"name": "image", "type": "IMAGE", "link": None},
                                                            {"name": "model", "type": "MODEL", "link": 1}]},
        ],
        "links": [{"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 1, "type": "MODEL"},
                  {"id": 2, "origin_id": 1, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "MODEL"}],
    }
    workflow = ui(
        [
            {"id": 1, "type": "Source", "mode": 0},
            {"id": 2, "type": SUB, "mode": instance_mode, "inputs": [{"name": "model", "type": "MODEL", "link": 1}],
             "outputs": [{"name": "model", "type": "MODEL", "links": [2]}]},
            {"id": 3, "type": "Sink", "mode": 0, "inputs": [{"name": "model", "type": "MODEL", "link": 2}]},
        ],
        [[1, 1, 0, 2, 0, "MODEL"], [2, 2, 0, 3, 0, "MODEL"]],
    )
    workflow["definitions"] = {"subgraphs": [definition]}
    return workflow


def test_subgraph_instance_expands_with_colon_ids():
    prompt = compile_workflow(subgraph_workflow(0), FAKE_INFO)
    assert set(prompt) == {"1", "2:1", "3"}
    assert prompt["2:1"]["inputs"] == {"model": ["1", 0]}
    assert prompt["3"]["inputs"] == {"model": ["2:1", 0]}


def test_muted_subgraph_instance_vanishes_with_its_consumers_inputs():
    prompt = compile_workflow(subgraph_workflow(2), FAKE_INFO)
    assert set(prompt) == {"1", "3"} and prompt["3"]["inputs"] == {}


def test_bypassed_subgraph_instance_passes_its_matching_input_through():
    prompt = compile_workflow(subgraph_workflow(4), FAKE_INFO)
    assert set(prompt) == {"1", "3"} and prompt["3"]["inputs"] == {"model": ["1", 0]}


def test_bypassed_node_inside_a_subgraph_reaches_the_outer_graph():
    inner = [{"id": 1, "type": "Pass", "mode": 4, "inputs": [{"name": "image", "type": "IMAGE", "link": None},
                                                             {"name": "model", "type": "MODEL", "link": 1}]}]
    prompt = compile_workflow(subgraph_workflow(0, inner), FAKE_INFO)
    assert set(prompt) == {"1", "3"} and prompt["3"]["inputs"] == {"model": ["1", 0]}


def test_self_containing_subgraph_is_an_error_not_a_hang():
    recursive = [{"id": 1, "type": SUB, "mode": 0, "inputs": [{"name": "model", "type": "MODEL", "link": 1}]}]
    with pytest.raises(WorkflowError, match="nested too deeply"):
        compile_workflow(subgraph_workflow(0, recursive), FAKE_INFO)
