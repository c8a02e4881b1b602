"""Conditioning nodes: their /object_info specs and what they do to CONDITIONING values."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from engine.registry import NodeRegistry
from nodes import conditioning as module
from nodes.conditioning import (
    CLIPSetLastLayer,
    CLIPTextEncode,
    ConditioningAverage,
    ConditioningCombine,
    ConditioningConcat,
    ConditioningSetArea,
    ConditioningSetAreaPercentage,
    ConditioningSetAreaStrength,
    ConditioningSetMask,
    ConditioningSetTimestepRange,
    ConditioningZeroOut,
)

REPOSITORY = Path(__file__).parents[2]
COMFYUI_OBJECT_INFO = REPOSITORY / "tests" / "fixtures" / "comfyui-object-info.json"
COMPARED_KEYS = ("input", "input_order", "output", "output_name", "output_is_list", "category",
                 "output_node", "display_name", "description")


def _cond(tokens: int, value: float, pooled: float | None = None, width: int = 4) -> list:
    options = {} if pooled is None else {"pooled_output": torch.full((1, width), pooled)}
    return [torch.full((1, tokens, width), value), options]


# -- specs -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def comfyui() -> dict:
    return json.loads(COMFYUI_OBJECT_INFO.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    registry = NodeRegistry()
    registry.add_module(module.NODE_CLASS_MAPPINGS, module.NODE_DISPLAY_NAME_MAPPINGS, "nodes.conditioning",
                        builtin=True)
    return registry


@pytest.mark.parametrize("class_type", sorted(module.NODE_CLASS_MAPPINGS))
def test_spec_is_comfyuis(class_type, registry, comfyui):
    ours = json.loads(json.dumps(registry.node_info(class_type)))
    theirs = comfyui[class_type]
    for key in COMPARED_KEYS:
        assert ours[key] == theirs[key], key
    assert ours.get("output_tooltips", [None]) == theirs.get("output_tooltips", [None])


def test_module_imports_without_torch():
    script = textwrap.dedent("""
        import sys
        import nodes.conditioning
        print(",".join(m for m in ("torch", "numpy", "diffusion") if m in sys.modules))
    """)
    completed = subprocess.run([sys.executable, "-c", script], cwd=REPOSITORY, capture_output=True, text=True,
                               timeout=60, check=True)
    assert completed.stdout.strip() == ""


# -- text encoding ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip():
    """A tiny SD1-layout text encoder (width 64, one layer) with random weights."""
    from diffusion.models.clip_text import CLIPTextConfig, CLIPTextModel
    from diffusion.text_encoder import text_encoder_from_state_dict

    torch.manual_seed(0)
    config = CLIPTextConfig(width=64, layers=2, heads=1, mlp_width=128)
    weights = {f"cond_stage_model.transformer.{k}": torch.randn_like(v) * 0.05
               for k, v in CLIPTextModel(config).state_dict().items()}
    return text_encoder_from_state_dict(weights, "cond_stage_model.")


def test_clip_text_encode_returns_the_prompts_conditioning(clip):
    (result,) = CLIPTextEncode().encode(clip=clip, text="a (red:1.2) cat")
    expected_cond, expected_pooled = clip.encode_from_tokens(clip.tokenize("a (red:1.2) cat"), return_pooled=True)
    assert len(result) == 1
    cond, options = result[0]
    assert cond.shape == (1, 77, 64)
    torch.testing.assert_close(cond, expected_cond, atol=0, rtol=0)
    torch.testing.assert_close(options["pooled_output"], expected_pooled, atol=0, rtol=0)


def test_clip_text_encode_explains_a_missing_clip():
    with pytest.raises(RuntimeError, match="clip input is invalid: None"):
        CLIPTextEncode().encode(clip=None, text="a cat")


def test_clip_set_last_layer_changes_a_clone_only(clip):
    (skipped,) = CLIPSetLastLayer().set_last_layer(clip=clip, stop_at_clip_layer=-2)
    assert skipped is not clip and skipped.model is clip.model
    assert (skipped.layer_idx, clip.layer_idx) == (-2, None)
    tokens = clip.tokenize("a cat")
    assert not torch.allclose(skipped.encode_from_tokens(tokens), clip.encode_from_tokens(tokens))


# -- list operations --------------------------------------------------------------------------------


def test_combine_concatenates_the_lists():
    first, second = [_cond(77, 1.0)], [_cond(77, 2.0), _cond(154, 3.0)]
    (combined,) = ConditioningCombine().combine(first, second)
    assert [entry[0] for entry in combined] == [first[0][0], second[0][0], second[1][0]]


def test_average_blends_tensors_and_pooled_outputs():
    to, source = [_cond(77, 1.0, pooled=10.0)], [_cond(77, 3.0, pooled=30.0)]
    (result,) = ConditioningAverage().addWeighted(to, source, 0.25)
    torch.testing.assert_close(result[0][0], torch.full((1, 77, 4), 1.0 * 0.25 + 3.0 * 0.75))
    torch.testing.assert_close(result[0][1]["pooled_output"], torch.full((1, 4), 10.0 * 0.25 + 30.0 * 0.75))
    assert to[0][1]["pooled_output"][0, 0] == 10.0  # the input is not modified


def test_average_cuts_or_zero_pads_the_source_to_the_target_length():
    source = [[torch.arange(154 * 4, dtype=torch.float32).reshape(1, 154, 4), {}]]
    (cut,) = ConditioningAverage().addWeighted([_cond(77, 0.0)], source, 0.5)
    torch.testing.assert_close(cut[0][0], source[0][0][:, :77] * 0.5)
    (padded,) = ConditioningAverage().addWeighted([_cond(231, 2.0)], source, 0.5)
    expected = torch.cat([source[0][0] * 0.5 + 1.0, torch.full((1, 77, 4), 1.0)], dim=1)
    torch.testing.assert_close(padded[0][0], expected)


def test_average_takes_the_source_pooled_output_when_the_target_has_none():
    (result,) = ConditioningAverage().addWeighted([_cond(77, 0.0)], [_cond(77, 1.0, pooled=5.0)], 0.3)
    torch.testing.assert_close(result[0][1]["pooled_output"], torch.full((1, 4), 5.0))


def test_concat_appends_the_first_source_along_tokens():
    to = [_cond(77, 1.0, pooled=1.0), _cond(154, 2.0)]
    (result,) = ConditioningConcat().concat(to, [_cond(77, 9.0), _cond(77, 8.0)])
    assert [entry[0].shape[1] for entry in result] == [154, 231]
    torch.testing.assert_close(result[1][0][:, 154:], torch.full((1, 77, 4), 9.0))
    assert result[0][1] == to[0][1] and result[0][1] is not to[0][1]


# -- options ----------------------------------------------------------------------------------------


def test_set_area_stores_latent_units():
    original = [_cond(77, 1.0, pooled=1.0)]
    (result,) = ConditioningSetArea().append(original, width=200, height=120, x=16, y=24, strength=0.7)
    assert result[0][1]["area"] == (120 // 8, 200 // 8, 24 // 8, 16 // 8)
    assert (result[0][1]["strength"], result[0][1]["set_area_to_bounds"]) == (0.7, False)
    assert result[0][0] is original[0][0] and "area" not in original[0][1]
    assert result[0][1]["pooled_output"] is original[0][1]["pooled_output"]


def test_set_area_percentage_stores_fractions_height_first():
    (result,) = ConditioningSetAreaPercentage().append([_cond(77, 1.0)], width=0.5, height=0.25, x=0.1, y=0.2,
                                                       strength=1.5)
    assert result[0][1] == {"area": ("percentage", 0.25, 0.5, 0.2, 0.1), "strength": 1.5,
                            "set_area_to_bounds": False}


def test_set_area_strength_only_sets_strength():
    (result,) = ConditioningSetAreaStrength().append([_cond(77, 1.0)], strength=2.5)
    assert result[0][1] == {"strength": 2.5}


@pytest.mark.parametrize(("set_cond_area", "to_bounds"), [("default", False), ("mask bounds", True)])
def test_set_mask_adds_a_batch_axis_to_a_single_mask(set_cond_area, to_bounds):
    mask = torch.zeros(16, 16)
    (result,) = ConditioningSetMask().append([_cond(77, 1.0)], mask=mask, set_cond_area=set_cond_area, strength=0.5)
    options = result[0][1]
    assert options["mask"].shape == (1, 16, 16)
    assert (options["set_area_to_bounds"], options["mask_strength"]) == (to_bounds, 0.5)


def test_zero_out_zeroes_tensor_and_pooled_output():
    original = [_cond(77, 1.0, pooled=3.0)]
    (result,) = ConditioningZeroOut().zero_out(original)
    assert torch.count_nonzero(result[0][0]) == 0 and result[0][0].shape == (1, 77, 4)
    assert torch.count_nonzero(result[0][1]["pooled_output"]) == 0
    assert original[0][1]["pooled_output"][0, 0] == 3.0


def test_timestep_range_sets_start_and_end_percent():
    (result,) = ConditioningSetTimestepRange().set_range([_cond(77, 1.0)], start=0.2, end=0.8)
    assert result[0][1] == {"start_percent": 0.2, "end_percent": 0.8}
