"""Image nodes behave as ComfyUI's: sizes, rounding, crops, blend formulas, padding masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nodes.image import (
    BLEND_MODES,
    EmptyImage,
    ImageBatch,
    ImageBlend,
    ImageCrop,
    ImageInvert,
    ImagePadForOutpaint,
    ImageScale,
    ImageScaleBy,
    ImageScaleToTotalPixels,
    scale_nchw,
)


def gradient_image(batch: int, height: int, width: int, channels: int = 3) -> torch.Tensor:
    """A deterministic image whose every pixel differs, in 0..1."""
    count = batch * height * width * channels
    return (torch.arange(count, dtype=torch.float32) / count).reshape(batch, height, width, channels)


class TestEmptyImage:
    def test_fills_the_batch_with_the_rgb_colour(self):
        (image,) = EmptyImage().generate(width=4, height=3, batch_size=2, color=0xFF8000)
        assert image.shape == (2, 3, 4, 3)
        assert image.dtype == torch.float32
        assert torch.equal(image[..., 0], torch.ones(2, 3, 4))
        assert torch.allclose(image[..., 1], torch.full((2, 3, 4), 128 / 255))
        assert torch.equal(image[..., 2], torch.zeros(2, 3, 4))

    def test_default_colour_is_black(self):
        (image,) = EmptyImage().generate(width=2, height=2)
        assert torch.equal(image, torch.zeros(1, 2, 2, 3))


def test_image_invert_is_one_minus_the_image():
    image = gradient_image(1, 2, 3)
    (inverted,) = ImageInvert().invert(image)
    assert torch.allclose(inverted, 1.0 - image)


class TestImageScale:
    def test_nearest_exact_doubling_repeats_each_pixel(self):
        image = gradient_image(1, 2, 2)
        (scaled,) = ImageScale().upscale(image, "nearest-exact", 4, 4, "disabled")
        assert scaled.shape == (1, 4, 4, 3)
        expected = image.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
        assert torch.equal(scaled, expected)

    def test_bilinear_uses_half_pixel_centres(self):
        # Samples at x = 0.25 and 0.75 of a [0, 1] ramp, clamped at the borders.
        ramp = torch.tensor([0.0, 1.0]).reshape(1, 1, 2, 1).expand(1, 1, 2, 3)
        (scaled,) = ImageScale().upscale(ramp, "bilinear", 4, 1, "disabled")
        assert torch.allclose(scaled[0, 0, :, 0], torch.tensor([0.0, 0.25, 0.75, 1.0]))

    def test_area_halving_averages_two_by_two_blocks(self):
        image = gradient_image(1, 4, 4)
        (scaled,) = ImageScale().upscale(image, "area", 2, 2, "disabled")
        blocks = image.reshape(1, 2, 2, 2, 2, 3).mean(dim=(2, 4))
        assert torch.allclose(scaled, blocks)

    def test_lanczos_matches_pillow_on_8bit_pixels(self):
        image = gradient_image(2, 6, 5)
        (scaled,) = ImageScale().upscale(image, "lanczos", 9, 7, "disabled")
        assert scaled.shape == (2, 7, 9, 3)
        for index in range(2):
            as_bytes = np.clip(255.0 * image[index].numpy(), 0, 255).astype(np.uint8)
            reference = Image.fromarray(as_bytes).resize((9, 7), resample=Image.Resampling.LANCZOS)
            assert torch.equal(scaled[index], torch.from_numpy(np.asarray(reference, dtype=np.float32) / 255.0))

    def test_center_crop_cuts_the_wider_side_evenly_before_scaling(self):
        image = gradient_image(1, 2, 4)  # 4 wide, 2 high, target 1:1
        (scaled,) = ImageScale().upscale(image, "nearest-exact", 2, 2, "center")
        assert torch.equal(scaled, image[:, :, 1:3, :])

    def test_zero_width_keeps_the_aspect_ratio(self):
        (scaled,) = ImageScale().upscale(gradient_image(1, 2, 4), "bilinear", 0, 4, "disabled")
        assert scaled.shape == (1, 4, 8, 3)

    def test_zero_height_keeps_the_aspect_ratio_and_at_least_one_pixel(self):
        (scaled,) = ImageScale().upscale(gradient_image(1, 2, 40), "bilinear", 10, 0, "disabled")
        assert scaled.shape == (1, 1, 10, 3)

    def test_both_sides_zero_returns_the_image_unchanged(self):
        image = gradient_image(1, 3, 3)
        (scaled,) = ImageScale().upscale(image, "bicubic", 0, 0, "center")
        assert scaled is image

    def test_unknown_method_is_refused(self):
        with pytest.raises(ValueError, match="unknown upscale method"):
            scale_nchw(torch.zeros(1, 3, 2, 2), 4, 4, "bislerp", "disabled")


def test_image_scale_by_rounds_each_side_half_to_even():
    (scaled,) = ImageScaleBy().upscale(gradient_image(1, 6, 10), "nearest-exact", 0.25)
    # 10 * 0.25 = 2.5 -> 2 and 6 * 0.25 = 1.5 -> 2 (Python's round, as ComfyUI)
    assert scaled.shape == (1, 2, 2, 3)
    (scaled,) = ImageScaleBy().upscale(gradient_image(1, 6, 10), "bilinear", 1.5)
    assert scaled.shape == (1, 9, 15, 3)


def test_image_scale_to_total_pixels_keeps_the_aspect_ratio():
    # 256 x 128 = 2^15 pixels; 0.125 megapixels = 2^17 pixels, so each side doubles.
    (scaled,) = ImageScaleToTotalPixels().upscale(gradient_image(1, 128, 256), "nearest-exact", 0.125)
    assert scaled.shape == (1, 256, 512, 3)


class TestImageCrop:
    def test_cuts_the_window_at_x_y(self):
        image = gradient_image(2, 5, 6)
        (cropped,) = ImageCrop().crop(image, width=3, height=2, x=1, y=2)
        assert torch.equal(cropped, image[:, 2:4, 1:4, :])

    def test_window_is_clipped_at_the_border(self):
        image = gradient_image(1, 5, 6)
        (cropped,) = ImageCrop().crop(image, width=512, height=512, x=4, y=0)
        assert torch.equal(cropped, image[:, :, 4:, :])

    def test_origin_past_the_border_keeps_the_last_pixel(self):
        image = gradient_image(1, 5, 6)
        (cropped,) = ImageCrop().crop(image, width=2, height=2, x=100, y=100)
        assert torch.equal(cropped, image[:, 4:5, 5:6, :])


class TestImageBlend:
    base_value, layer_value = 0.2, 0.7

    # Reference values worked out by hand from the W3C Compositing and Blending formulas.
    expected_full_blend = {
        "normal": 0.7,
        "multiply": 0.2 * 0.7,
        "screen": 1 - 0.8 * 0.3,
        "overlay": 2 * 0.2 * 0.7,  # base <= 0.5: multiply branch
        "soft_light": 0.2 + (2 * 0.7 - 1) * (((16 * 0.2 - 12) * 0.2 + 4) * 0.2 - 0.2),  # D(0.2): cubic branch
        "difference": 0.0,  # 0.2 - 0.7 clamped
    }

    def images(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.full((1, 2, 2, 3), self.base_value), torch.full((1, 2, 2, 3), self.layer_value)

    @pytest.mark.parametrize("mode", BLEND_MODES)
    def test_full_factor_gives_the_blend_mode_formula(self, mode):
        base, layer = self.images()
        (blended,) = ImageBlend().blend_images(base, layer, 1.0, mode)
        assert torch.allclose(blended, torch.full_like(base, self.expected_full_blend[mode]), atol=1e-6)

    def test_factor_mixes_with_the_first_image(self):
        base, layer = self.images()
        (blended,) = ImageBlend().blend_images(base, layer, 0.25, "multiply")
        assert torch.allclose(blended, torch.full_like(base, 0.75 * 0.2 + 0.25 * 0.14))

    def test_soft_light_with_a_dark_layer_and_overlay_with_a_light_base(self):
        base, layer = torch.full((1, 1, 1, 3), 0.6), torch.full((1, 1, 1, 3), 0.3)
        (soft,) = ImageBlend().blend_images(base, layer, 1.0, "soft_light")
        assert torch.allclose(soft, torch.full_like(base, 0.6 - 0.4 * 0.6 * 0.4))
        (overlay,) = ImageBlend().blend_images(base, layer, 1.0, "overlay")
        assert torch.allclose(overlay, torch.full_like(base, 1 - 2 * 0.4 * 0.7))

    def test_second_image_is_fitted_to_the_first(self):
        (blended,) = ImageBlend().blend_images(gradient_image(1, 4, 6), gradient_image(1, 8, 8), 0.5, "normal")
        assert blended.shape == (1, 4, 6, 3)

    def test_unknown_mode_is_refused(self):
        base, layer = self.images()
        with pytest.raises(ValueError, match="Unsupported blend mode"):
            ImageBlend().blend_images(base, layer, 0.5, "hue")


class TestImageBatch:
    def test_concatenates_same_sized_images(self):
        first, second = gradient_image(2, 3, 4), 1 - gradient_image(1, 3, 4)
        (batch,) = ImageBatch().batch(first, second)
        assert torch.equal(batch, torch.cat((first, second)))

    def test_second_image_is_resized_to_the_first(self):
        (batch,) = ImageBatch().batch(gradient_image(1, 4, 6), gradient_image(2, 8, 8))
        assert batch.shape == (3, 4, 6, 3)

    def test_rgb_next_to_rgba_gains_an_opaque_alpha(self):
        (batch,) = ImageBatch().batch(gradient_image(1, 2, 2, 3), gradient_image(1, 2, 2, 4))
        assert batch.shape == (2, 2, 2, 4)
        assert torch.equal(batch[0, ..., 3], torch.ones(2, 2))


class TestImagePadForOutpaint:
    def test_pads_with_grey_and_masks_the_padding(self):
        image = gradient_image(1, 3, 4)
        padded, mask = ImagePadForOutpaint().expand_image(image, left=2, top=1, right=0, bottom=3, feathering=0)
        assert padded.shape == (1, 7, 6, 3)
        assert torch.equal(padded[:, 1:4, 2:6, :], image)
        assert torch.all(padded[:, 0, :, :] == 0.5) and torch.all(padded[:, :, :2, :] == 0.5)
        expected = torch.ones(1, 7, 6)
        expected[:, 1:4, 2:6] = 0.0
        assert torch.equal(mask, expected)

    def test_feathering_is_a_squared_ramp_from_the_padded_sides_only(self):
        image = gradient_image(1, 10, 10)
        _, mask = ImagePadForOutpaint().expand_image(image, left=8, top=0, right=0, bottom=0, feathering=4)
        inner = mask[0, :, 8:]
        ramp = torch.tensor([1.0, 0.5625, 0.25, 0.0625, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # ((4 - d) / 4)^2
        assert torch.equal(inner, ramp.expand(10, 10))
        assert torch.equal(mask[0, :, :8], torch.ones(10, 8))

    def test_corner_takes_the_nearest_padded_side(self):
        _, mask = ImagePadForOutpaint().expand_image(gradient_image(1, 10, 10), 8, 8, 0, 0, 4)
        assert mask[0, 8 + 1, 8 + 3].item() == pytest.approx(((4 - 1) / 4) ** 2)

    def test_feathering_too_wide_for_the_image_is_skipped(self):
        _, mask = ImagePadForOutpaint().expand_image(gradient_image(1, 8, 8), 8, 0, 0, 0, 4)
        assert torch.equal(mask[0, :, 8:], torch.zeros(8, 8))
