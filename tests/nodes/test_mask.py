"""Mask nodes: shapes and values as ComfyUI's, GrowMask checked against scipy's grey morphology."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from nodes.mask import GrowMask, ImageToMask, InvertMask, MaskToImage, SolidMask


def test_solid_mask_is_one_value_of_the_given_size():
    (mask,) = SolidMask().solid(value=0.25, width=5, height=3)
    assert mask.shape == (1, 3, 5)
    assert mask.dtype == torch.float32
    assert torch.all(mask == 0.25)


def test_invert_mask_is_one_minus_the_mask():
    mask = torch.tensor([[[0.0, 0.25], [1.0, 0.5]]])
    (inverted,) = InvertMask().invert(mask)
    assert torch.equal(inverted, torch.tensor([[[1.0, 0.75], [0.0, 0.5]]]))


class TestMaskToImage:
    def test_batch_of_masks_becomes_grey_images(self):
        mask = torch.rand(2, 3, 4)
        (image,) = MaskToImage().mask_to_image(mask)
        assert image.shape == (2, 3, 4, 3)
        for channel in range(3):
            assert torch.equal(image[..., channel], mask)

    def test_single_two_dimensional_mask_becomes_a_batch_of_one(self):
        (image,) = MaskToImage().mask_to_image(torch.rand(3, 4))
        assert image.shape == (1, 3, 4, 3)


class TestImageToMask:
    @pytest.mark.parametrize("index, channel", enumerate(["red", "green", "blue", "alpha"]))
    def test_takes_the_named_channel(self, index, channel):
        image = torch.rand(2, 3, 4, 4)
        (mask,) = ImageToMask().image_to_mask(image, channel)
        assert torch.equal(mask, image[..., index])

    def test_alpha_of_an_rgb_image_is_a_clear_error(self):
        with pytest.raises(ValueError, match="no alpha channel"):
            ImageToMask().image_to_mask(torch.rand(1, 2, 2, 3), "alpha")


class TestGrowMask:
    @staticmethod
    def scipy_reference(mask: np.ndarray, expand: int, tapered_corners: bool) -> np.ndarray:
        corner = 0 if tapered_corners else 1
        footprint = np.array([[corner, 1, corner], [1, 1, 1], [corner, 1, corner]], dtype=bool)
        operation = ndimage.grey_dilation if expand > 0 else ndimage.grey_erosion
        for _ in range(abs(expand)):
            mask = operation(mask, footprint=footprint)
        return mask

    @pytest.mark.parametrize("expand", [-2, -1, 1, 3])
    @pytest.mark.parametrize("tapered_corners", [True, False])
    def test_matches_scipy_grey_morphology(self, expand, tapered_corners):
        generator = torch.Generator().manual_seed(expand * 10 + tapered_corners)
        masks = (torch.rand(2, 9, 11, generator=generator) > 0.7).float() * torch.rand(2, 9, 11, generator=generator)
        (grown,) = GrowMask().expand_mask(masks, expand, tapered_corners)
        for index in range(2):
            expected = self.scipy_reference(masks[index].numpy(), expand, tapered_corners)
            assert np.array_equal(grown[index].numpy(), expected)

    def test_tapered_growth_of_a_dot_is_a_diamond_and_square_growth_a_square(self):
        dot = torch.zeros(1, 5, 5)
        dot[0, 2, 2] = 1.0
        (diamond,) = GrowMask().expand_mask(dot, 2, True)
        rows, cols = torch.meshgrid(torch.arange(5), torch.arange(5), indexing="ij")
        assert torch.equal(diamond[0], ((rows - 2).abs() + (cols - 2).abs() <= 2).float())
        (square,) = GrowMask().expand_mask(dot, 2, False)
        assert torch.equal(square[0], torch.ones(5, 5))

    def test_zero_expand_returns_the_mask_as_a_batch(self):
        mask = torch.rand(4, 6)
        (same,) = GrowMask().expand_mask(mask, 0, True)
        assert torch.equal(same, mask.unsqueeze(0))
