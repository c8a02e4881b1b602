"""ControlNet hint preprocessors that need no downloaded model (`diffusion.preprocess`).

`Canny` is ComfyUI's node (comfy_extras/nodes_canny.py); `ScribbleFromEdges` and
`DepthFromLuminance` are Kiln's own. Each takes an IMAGE and returns a 3-channel IMAGE
(the single-channel result repeated), ready for Apply ControlNet.
"""

from __future__ import annotations

from typing import Any

THRESHOLD = {"min": 0.01, "max": 0.99, "step": 0.01}
CATEGORY = "image/preprocessors"


def _as_image(single_channel: Any) -> Any:
    """`[B, 1, H, W]` -> IMAGE `[B, H, W, 3]`."""
    return single_channel.repeat(1, 3, 1, 1).movedim(1, -1)


class Canny:
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "detect_edge"
    CATEGORY = CATEGORY

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "image": ("IMAGE",),
            "low_threshold": ("FLOAT", dict(THRESHOLD, default=0.4)),
            "high_threshold": ("FLOAT", dict(THRESHOLD, default=0.8)),
        }}

    def detect_edge(self, image: Any, low_threshold: float, high_threshold: float) -> tuple:
        from diffusion.preprocess import canny

        _, edges = canny(image.movedim(-1, 1), low_threshold, high_threshold)
        return (_as_image(edges),)


class ScribbleFromEdges:
    DESCRIPTION = "Thick white strokes on black from the image's Canny edges, for scribble ControlNets."
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "scribble"
    CATEGORY = CATEGORY

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "image": ("IMAGE",),
            "low_threshold": ("FLOAT", dict(THRESHOLD, default=0.2)),
            "high_threshold": ("FLOAT", dict(THRESHOLD, default=0.4)),
            "thickness": ("INT", {"default": 3, "min": 1, "max": 32, "step": 1}),
        }}

    def scribble(self, image: Any, low_threshold: float, high_threshold: float, thickness: int) -> tuple:
        from diffusion.preprocess import scribble

        return (_as_image(scribble(image.movedim(-1, 1), low_threshold, high_threshold, thickness)),)


class DepthFromLuminance:
    DESCRIPTION = "A rough depth map from brightness (brighter is nearer), for depth ControlNets without a depth model."
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "estimate"
    CATEGORY = CATEGORY

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "image": ("IMAGE",),
            "blur_sigma": ("FLOAT", {"default": 2.0, "min": 0.0, "max": 64.0, "step": 0.1}),
            "invert": ("BOOLEAN", {"default": False}),
        }}

    def estimate(self, image: Any, blur_sigma: float, invert: bool) -> tuple:
        from diffusion.preprocess import luminance_depth

        return (_as_image(luminance_depth(image.movedim(-1, 1), blur_sigma, invert)),)


NODE_CLASS_MAPPINGS = {
    "Canny": Canny,
    "ScribbleFromEdges": ScribbleFromEdges,
    "DepthFromLuminance": DepthFromLuminance,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "ScribbleFromEdges": "Scribble From Edges",
    "DepthFromLuminance": "Depth From Luminance",
}
