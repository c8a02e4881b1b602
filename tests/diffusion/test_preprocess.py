"""Hint preprocessors: Canny equals kornia's (the reference ComfyUI's Canny node calls); scribble and depth behave as specified."""

from __future__ import annotations

import pytest
import kornia
import torch

from diffusion.preprocess import canny, gaussian_blur, luminance_depth, scribble, to_greyscale


def shapes_image(size: int = 48) -> torch.Tensor:
    """A bright disc and a grey square on a dark gradient, plus mild noise: real edges and weak ones."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    image = torch.stack([0.1 + 0.2 * x / size, 0.15 * torch.ones_like(x), 0.2 * y / size])
    disc = ((x - 30) ** 2 + (y - 18) ** 2 < 90).float()
    square = ((x > 6) & (x < 20) & (y > 24) & (y < 40)).float()
    image = image * (1 - disc) + disc * torch.tensor([0.9, 0.8, 0.3]).view(3, 1, 1)
    image = image * (1 - square) + square * 0.5
    noise = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0)) * 0.05
    return (image + noise).clamp(0, 1).unsqueeze(0)


@pytest.mark.parametrize("low, high", [(0.1, 0.2), (0.4, 0.8), (0.05, 0.6)])
def test_canny_matches_kornia(low, high):
    image = torch.cat([shapes_image(), torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(1))])
    magnitude, edges = canny(image, low, high)
    expected_magnitude, expected_edges = kornia.filters.canny(image, low, high)
    torch.testing.assert_close(magnitude, expected_magnitude, rtol=1e-5, atol=1e-6)
    assert torch.equal(edges, expected_edges)
    assert edges.sum() > 0


def test_canny_of_a_flat_image_is_empty_and_thresholds_are_checked():
    assert canny(torch.full((1, 3, 16, 16), 0.5), 0.1, 0.2)[1].sum() == 0
    with pytest.raises(ValueError):
        canny(torch.rand(1, 3, 8, 8), 0.5, 0.2)


def test_greyscale_and_blur_match_kornia():
    image = torch.rand(2, 3, 20, 24, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(to_greyscale(image), kornia.color.rgb_to_grayscale(image))
    torch.testing.assert_close(gaussian_blur(image, 5, 1.0), kornia.filters.gaussian_blur2d(image, (5, 5), (1.0, 1.0)))


def test_scribble_strokes_are_thicker_than_edges_and_cover_them():
    image = shapes_image()
    _, edges = canny(image, 0.1, 0.2)
    strokes = scribble(image, 0.1, 0.2, thickness=3)
    assert set(strokes.unique().tolist()) <= {0.0, 1.0}
    assert strokes.sum() > edges.sum()
    assert (strokes[edges > 0] == 1).float().mean() > 0.9


def test_luminance_depth_is_stretched_brightness_order():
    ramp = torch.linspace(0, 0.5, 16).view(1, 1, 1, 16).expand(1, 3, 16, 16)
    depth = luminance_depth(ramp, blur_sigma=0.0)
    torch.testing.assert_close(depth[0, 0, 0], torch.linspace(0, 1, 16))
    torch.testing.assert_close(luminance_depth(ramp, 0.0, invert=True), 1 - depth)
