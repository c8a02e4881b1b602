"""Classifier-free guidance (comfy-compat §10.5): one batched model call, areas, masks, ranges, control."""

from __future__ import annotations

import pytest
import torch

from diffusion.sampling.guidance import FEATHER_PIXELS, CFGGuider, calc_cond_batch, resolve_conditioning
from tests.helpers.sampling_doubles import DummyModel, conditioning, denoise

SHAPE = (2, 4, 16, 16)


def guider_for(model, positive, negative, cfg):
    guider = CFGGuider(model, positive, negative, cfg)
    guider.prepare(SHAPE, "cpu")
    return guider


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))


def test_cond_and_uncond_share_one_model_call_and_combine_by_cfg(x):
    model = DummyModel()
    sigma = torch.tensor([3.0, 3.0])
    result = guider_for(model, conditioning(1.0), conditioning(-1.0), 7.5)(x, sigma)
    assert len(model.calls) == 1
    assert model.calls[0]["x"].shape[0] == 4
    assert model.calls[0]["transformer_options"]["cond_or_uncond"] == [0, 1]
    cond = denoise(x, sigma, torch.full((2, 3, 8), 1.0))
    uncond = denoise(x, sigma, torch.full((2, 3, 8), -1.0))
    torch.testing.assert_close(result, uncond + (cond - uncond) * 7.5)


def test_cfg_one_skips_the_uncond_pass(x):
    model = DummyModel()
    sigma = torch.tensor([1.0, 1.0])
    result = guider_for(model, conditioning(0.5), conditioning(-1.0), 1.0)(x, sigma)
    assert len(model.calls) == 1 and model.calls[0]["x"].shape[0] == 2
    torch.testing.assert_close(result, denoise(x, sigma, torch.full((2, 3, 8), 0.5)))


def test_prompts_of_different_lengths_batch_by_repeating_to_the_common_multiple(x):
    model = DummyModel()
    guider_for(model, conditioning(1.0, tokens=77), conditioning(0.0, tokens=154), 5.0)(x, torch.tensor([2.0, 2.0]))
    assert len(model.calls) == 1
    assert model.calls[0]["context"].shape == (4, 154, 8)


def test_overlapping_prompts_are_averaged_with_their_strengths(x):
    model = DummyModel()
    positive = conditioning(1.0) + conditioning(3.0, strength=3.0)
    sigma = torch.tensor([2.0, 2.0])
    (cond,) = calc_cond_batch(model, [resolve_conditioning(positive, SHAPE, model.model_sampling)], x, sigma)
    a = denoise(x, sigma, torch.full((2, 3, 8), 1.0))
    b = denoise(x, sigma, torch.full((2, 3, 8), 3.0))
    torch.testing.assert_close(cond, (a + 3 * b) / 4)


def test_area_prompts_are_feathered_over_eight_latent_pixels(x):
    model = DummyModel()
    base = conditioning(0.0)
    area = conditioning(2.0, area=(8, 16, 8, 0), strength=1.0)  # bottom half: (h, w, y, x)
    sigma = torch.tensor([2.0, 2.0])
    (cond,) = calc_cond_batch(model, [resolve_conditioning(base + area, SHAPE, model.model_sampling)], x, sigma)
    full = denoise(x, sigma, torch.zeros(2, 3, 8))
    inside = denoise(x, sigma, torch.full((2, 3, 8), 2.0))
    ramp = torch.tensor([(t + 1) / FEATHER_PIXELS for t in range(8)]).reshape(1, 1, 8, 1)  # top edge only
    expected = full.clone()
    expected[:, :, 8:] = (full[:, :, 8:] + inside[:, :, 8:] * ramp) / (1 + ramp)
    torch.testing.assert_close(cond, expected)


def test_percentage_areas_resolve_against_the_latent():
    entry = resolve_conditioning(conditioning(0, area=("percentage", 0.5, 0.25, 0.5, 0.0)), SHAPE, DummyModel().model_sampling)
    assert entry[0].area == (8, 4, 8, 0)


def test_masked_prompts_weight_by_mask_times_strength_without_feathering(x):
    model = DummyModel()
    mask = torch.zeros(1, 32, 32)
    mask[:, :, 16:] = 1.0  # right half at twice the latent size: resized bilinearly
    entry = conditioning(2.0, mask=mask, mask_strength=0.5, strength=2.0)
    sigma = torch.tensor([2.0, 2.0])
    (cond,) = calc_cond_batch(model, [resolve_conditioning(conditioning(0.0) + entry, SHAPE, model.model_sampling)], x, sigma)
    resized = torch.nn.functional.interpolate(mask.unsqueeze(1), size=(16, 16), mode="bilinear").squeeze(1)
    weight = (resized * 0.5 * 2.0).unsqueeze(1)
    expected = (denoise(x, sigma, torch.zeros(2, 3, 8)) + denoise(x, sigma, torch.full((2, 3, 8), 2.0)) * weight) / (1 + weight)
    torch.testing.assert_close(cond, expected)


def test_set_area_to_bounds_crops_the_model_input_to_the_mask():
    mask = torch.zeros(1, 16, 16)
    mask[:, 4:10, 2:6] = 1.0
    (entry,) = resolve_conditioning(conditioning(0, mask=mask, set_area_to_bounds=True), SHAPE, DummyModel().model_sampling)
    assert entry.area == (6, 4, 4, 2)


def test_start_and_end_percent_limit_a_prompt_to_its_sigma_range(x):
    model = DummyModel()
    ms = model.model_sampling
    late = conditioning(5.0, start_percent=0.5, end_percent=1.0)
    resolved = resolve_conditioning(conditioning(0.0) + late, SHAPE, ms)
    early_sigma = torch.full((2,), ms.percent_to_sigma(0.2))
    late_sigma = torch.full((2,), ms.percent_to_sigma(0.8))
    (early,) = calc_cond_batch(model, [resolved], x, early_sigma)
    torch.testing.assert_close(early, denoise(x, early_sigma, torch.zeros(2, 3, 8)))
    (late_out,) = calc_cond_batch(model, [resolved], x, late_sigma)
    both = (denoise(x, late_sigma, torch.zeros(2, 3, 8)) + denoise(x, late_sigma, torch.full((2, 3, 8), 5.0))) / 2
    torch.testing.assert_close(late_out, both)


class RecordingControl:
    def __init__(self) -> None:
        self.calls = []
        self.lifecycle = []
        self.residuals = {"output": [torch.ones(1)]}

    def pre_run(self, model, percent_to_sigma=None):
        self.lifecycle.append("pre_run")

    def cleanup(self):
        self.lifecycle.append("cleanup")

    def get_control(self, x, timestep, cond, batched_number):
        self.calls.append((tuple(x.shape), timestep.tolist(), tuple(cond["c_crossattn"].shape), batched_number))
        return self.residuals


def test_control_is_asked_per_chunk_and_its_result_passed_to_the_model(x):
    model = DummyModel()
    control = RecordingControl()
    sigma = torch.tensor([4.0, 4.0])
    guider_for(model, conditioning(1.0, control=control), conditioning(0.0, control=control), 3.0)(x, sigma)
    assert control.calls == [((4, 4, 16, 16), [4.0, 4.0, 4.0, 4.0], (4, 3, 8), 2)]
    assert model.calls[0]["control"] is control.residuals


def test_prompts_with_different_controls_run_in_separate_calls(x):
    model = DummyModel()
    guider_for(model, conditioning(1.0, control=RecordingControl()), conditioning(0.0), 3.0)(x, torch.tensor([4.0, 4.0]))
    assert len(model.calls) == 2


def test_model_cfg_hooks_replace_and_post_process_the_combination(x):
    model = DummyModel()
    model.model_options["sampler_cfg_function"] = lambda args: args["cond"]  # "eps" units: returns x - cond
    model.model_options["sampler_post_cfg_function"] = [lambda args: args["denoised"] * 2]
    sigma = torch.tensor([2.0, 2.0])
    result = guider_for(model, conditioning(1.0), conditioning(0.0), 6.0)(x, sigma)
    torch.testing.assert_close(result, denoise(x, sigma, torch.ones(2, 3, 8)) * 2)


def test_the_shared_call_is_split_when_the_memory_estimate_does_not_fit(x):
    model = DummyModel()
    model.memory_required = lambda shape: shape[0] * 1000
    model.devices.free_memory = lambda: 4000  # room for 2 items ×1.5, not for 4
    sigma = torch.tensor([3.0, 3.0])
    result = guider_for(model, conditioning(1.0), conditioning(-1.0), 7.5)(x, sigma)
    assert [call["x"].shape[0] for call in model.calls] == [2, 2]
    cond = denoise(x, sigma, torch.full((2, 3, 8), 1.0))
    uncond = denoise(x, sigma, torch.full((2, 3, 8), -1.0))
    torch.testing.assert_close(result, uncond + (cond - uncond) * 7.5)


def test_controls_are_readied_before_and_cleaned_up_after_a_run():
    from diffusion.sampling.pipeline import sample

    control = RecordingControl()
    model = DummyModel()
    sample(model, torch.randn(1, 4, 8, 8), 2, 3.0, "euler", "karras", conditioning(1.0, control=control),
           conditioning(0.0), torch.zeros(1, 4, 8, 8))
    assert control.lifecycle == ["pre_run", "cleanup"]
    assert len(control.calls) == 2
