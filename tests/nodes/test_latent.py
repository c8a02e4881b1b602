"""Latent nodes: ComfyUI's specs and behaviour of empty latents, resizing, batches, masks, compositing."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from diffusion.latent_ops import bislerp, slerp
from engine.registry import NodeRegistry
from nodes import latent
from tests.nodes.test_object_info_parity import comfyui_object_info, node_differences


@pytest.fixture(scope="module")
def registry() -> NodeRegistry:
    registry = NodeRegistry()
    registry.add_module(latent.NODE_CLASS_MAPPINGS, latent.NODE_DISPLAY_NAME_MAPPINGS, "nodes.latent", builtin=True)
    return registry


@pytest.mark.parametrize("class_type", sorted(latent.NODE_CLASS_MAPPINGS))
def test_node_describes_itself_as_comfyui_does(class_type, registry):
    problems = node_differences(class_type, registry.node_info(class_type), comfyui_object_info()[class_type])
    assert not problems, "\n".join(problems)


def samples(batch=1, channels=4, height=8, width=8, seed=0) -> dict:
    return {"samples": torch.randn(batch, channels, height, width, generator=torch.Generator().manual_seed(seed))}


def test_empty_latent_is_zeros_at_one_eighth_resolution():
    (out,) = latent.EmptyLatentImage().generate(512, 256, 3)
    assert out["samples"].shape == (3, 4, 32, 64) and not out["samples"].any()


@pytest.mark.parametrize("method", ["nearest-exact", "bilinear", "area", "bicubic"])
def test_upscale_uses_torch_interpolation_in_latent_pixels(method):
    source = samples()
    (out,) = latent.LatentUpscale().upscale(source, method, 128, 96, "disabled")
    torch.testing.assert_close(out["samples"], F.interpolate(source["samples"], size=(12, 16), mode=method))


def test_upscale_zero_side_keeps_aspect_and_both_zero_is_identity():
    source = samples(height=8, width=16)
    (out,) = latent.LatentUpscale().upscale(source, "bilinear", 0, 128, "disabled")
    assert out["samples"].shape[-2:] == (16, 32)
    (same,) = latent.LatentUpscale().upscale(source, "bilinear", 0, 0, "disabled")
    assert same is source
    (small,) = latent.LatentUpscale().upscale(source, "bilinear", 16, 16, "disabled")
    assert small["samples"].shape[-2:] == (8, 8)  # sides are at least 64 pixels


def test_upscale_center_crop_trims_to_the_target_aspect_first():
    source = samples(height=8, width=16)
    (out,) = latent.LatentUpscale().upscale(source, "nearest-exact", 64, 64, "center")
    torch.testing.assert_close(out["samples"], source["samples"][..., 4:12])


def test_upscale_by_rounds_the_scaled_size():
    (out,) = latent.LatentUpscaleBy().upscale(samples(height=8, width=10), "bilinear", 1.25)
    assert out["samples"].shape[-2:] == (10, 12)  # round(12.5) is 12, half to even


def test_slerp_follows_the_great_circle_and_interpolates_norms():
    start = torch.tensor([[2.0, 0.0]])
    end = torch.tensor([[0.0, 4.0]])
    middle = slerp(start, end, torch.tensor([[0.5]]))
    torch.testing.assert_close(middle, torch.tensor([[3.0 / math.sqrt(2), 3.0 / math.sqrt(2)]]))
    opposite = slerp(torch.tensor([[1.0, 0.0]]), torch.tensor([[-1.0, 0.0]]), torch.tensor([[0.25]]))
    torch.testing.assert_close(opposite, torch.tensor([[0.5, 0.0]]))  # no great circle: linear


def left_neighbours(old: int, new: int) -> list[int]:
    """The source pixel at or left of each output pixel's centre (half-pixel convention, clamped)."""
    return [math.floor(min(max((i + 0.5) * old / new - 0.5, 0.0), old - 1)) for i in range(new)]


def test_bislerp_keeps_constant_fields_and_takes_the_left_neighbour_of_parallel_vectors():
    constant = torch.ones(1, 4, 4, 4) * torch.tensor([1.0, -2.0, 0.5, 3.0]).reshape(1, 4, 1, 1)
    torch.testing.assert_close(bislerp(constant, 8, 6), constant[:, :, :1, :1].expand(1, 4, 6, 8))
    # Pixels of one direction are (nearly) parallel: ComfyUI's slerp then keeps the first vector.
    direction = torch.tensor([0.6, 0.8, 0.0, 0.0]).reshape(1, 4, 1, 1)
    magnitude = torch.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    field = direction * magnitude
    expected = field[:, :, left_neighbours(4, 7)][..., left_neighbours(4, 9)]
    torch.testing.assert_close(bislerp(field, 9, 7), expected)


def test_bislerp_slerps_between_orthogonal_neighbours():
    field = torch.zeros(1, 2, 1, 2)
    field[0, 0, 0, 0] = 1.0  # left pixel points along channel 0, right pixel along channel 1
    field[0, 1, 0, 1] = 1.0
    out = bislerp(field, 4, 1)  # positions 0, 0.25, 0.75, 1 (clamped) between the two pixels
    angles = torch.tensor([0.0, 0.25, 0.75, 1.0]) * math.pi / 2
    torch.testing.assert_close(out[0, :, 0], torch.stack([angles.cos(), angles.sin()]), rtol=1e-5, atol=1e-5)


def test_bislerp_through_the_node():
    (out,) = latent.LatentUpscaleBy().upscale(samples(), "bislerp", 2.0)
    assert out["samples"].shape == (1, 4, 16, 16) and torch.isfinite(out["samples"]).all()


def test_latent_from_batch_slices_and_records_batch_index():
    source = samples(batch=4)
    source["noise_mask"] = torch.rand(2, 1, 8, 8)
    (out,) = latent.LatentFromBatch().frombatch(source, 1, 2)
    assert torch.equal(out["samples"], source["samples"][1:3])
    assert out["batch_index"] == [1, 2]
    assert torch.equal(out["noise_mask"], source["noise_mask"].repeat(2, 1, 1, 1)[1:3])
    (last,) = latent.LatentFromBatch().frombatch(source, 10, 5)
    assert last["batch_index"] == [3] and last["samples"].shape[0] == 1
    (again,) = latent.LatentFromBatch().frombatch(out, 1, 1)
    assert again["batch_index"] == [2]


def test_repeat_latent_batch_tiles_samples_masks_and_offsets_batch_index():
    source = samples(batch=2)
    source["noise_mask"] = torch.rand(2, 1, 8, 8)
    source["batch_index"] = [4, 5]
    (out,) = latent.RepeatLatentBatch().repeat(source, 3)
    assert torch.equal(out["samples"], source["samples"].repeat(3, 1, 1, 1))
    assert out["noise_mask"].shape[0] == 6
    assert out["batch_index"] == [4, 5, 6, 7, 8, 9]


def test_set_latent_noise_mask_reshapes_to_b1hw():
    (out,) = latent.SetLatentNoiseMask().set_mask(samples(), torch.ones(64, 64))
    assert out["noise_mask"].shape == (1, 1, 64, 64)


def test_latent_composite_masked_pastes_at_pixel_offsets_divided_by_eight():
    destination = {"samples": torch.zeros(1, 4, 8, 8)}
    source = {"samples": torch.ones(1, 4, 4, 4)}
    (out,) = latent.LatentCompositeMasked().composite(destination, source, 16, 8, False)
    expected = torch.zeros(1, 4, 8, 8)
    expected[:, :, 1:5, 2:6] = 1.0
    assert torch.equal(out["samples"], expected)
    assert not destination["samples"].any()  # the input latent is untouched
    mask = torch.zeros(4, 4)
    mask[:, 2:] = 1.0
    (masked,) = latent.LatentCompositeMasked().composite(destination, source, 0, 0, False, mask)
    assert masked["samples"][0, 0, :4, :4].tolist() == [[0.0, 0.0, 1.0, 1.0]] * 4
    (clipped,) = latent.LatentCompositeMasked().composite(destination, source, 48, 48, False)
    assert clipped["samples"][0, 0, 6:, 6:].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    (resized,) = latent.LatentCompositeMasked().composite(destination, source, 0, 0, True)
    assert torch.equal(resized["samples"], torch.ones(1, 4, 8, 8))
