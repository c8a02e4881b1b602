"""Preprocessor nodes turn an IMAGE into a 3-channel hint IMAGE; Canny matches ComfyUI's spec and kornia's edges."""

from __future__ import annotations

import kornia
import torch

import nodes.preprocessors as preprocessor_nodes
from nodes.preprocessors import Canny, DepthFromLuminance, ScribbleFromEdges
from tests.diffusion.test_preprocess import shapes_image
from tests.nodes.test_lora import assert_matches_comfyui


def test_specs_match_comfyui(node_context):
    assert_matches_comfyui(preprocessor_nodes)


def test_canny_node_repeats_kornia_edges_to_rgb():
    image = shapes_image().movedim(1, -1)
    (out,) = Canny().detect_edge(image, 0.4, 0.8)
    _, edges = kornia.filters.canny(image.movedim(-1, 1), 0.4, 0.8)
    assert out.shape == image.shape
    assert torch.equal(out, edges.repeat(1, 3, 1, 1).movedim(1, -1))


def test_other_preprocessors_give_rgb_images_in_range():
    image = shapes_image().movedim(1, -1)
    for node, args in ((ScribbleFromEdges().scribble, (0.2, 0.4, 3)), (DepthFromLuminance().estimate, (2.0, False))):
        (out,) = node(image, *args)
        assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1
        assert torch.equal(out[..., 0], out[..., 2])
