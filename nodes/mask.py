"""Mask nodes: solid masks, inversion, image <-> mask conversion and growing/shrinking.

``MASK`` values are float ``[B, H, W]`` (sometimes ``[H, W]``) in 0..1 with 1 = masked
(comfy-compat §8). Specs follow ComfyUI's ``comfy_extras/nodes_mask.py`` entries in
comfyui-object-info.json. torch is imported inside the functions (start-up speed rule).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nodes import MAX_RESOLUTION

if TYPE_CHECKING:
    import torch

IMAGE_CHANNELS = ("red", "green", "blue", "alpha")


def as_mask_batch(mask: torch.Tensor) -> torch.Tensor:
    """View a ``[H, W]`` or ``[..., H, W]`` mask as ``[B, H, W]``."""
    return mask.reshape((-1, mask.shape[-2], mask.shape[-1]))


def grey_morphology_step(masks: torch.Tensor, tapered_corners: bool, grow: bool) -> torch.Tensor:
    """One grey dilation (``grow``) or erosion of ``[B, H, W]`` masks with a 3x3 footprint.

    The footprint is the 4-neighbour cross when ``tapered_corners`` (corners round off), else
    the full square. Pixels beyond the border are ignored, which for max/min is what
    ``scipy.ndimage.grey_dilation``/``grey_erosion`` give with their default ``reflect`` mode.
    Max pooling pads with -inf, so it ignores the border too; the cross is the union of a
    vertical and a horizontal 3-pixel bar; erosion is ``-dilate(-mask)``.
    """
    import torch
    import torch.nn.functional as F

    planes = masks.unsqueeze(1) if grow else -masks.unsqueeze(1)
    if tapered_corners:
        vertical = F.max_pool2d(planes, (3, 1), stride=1, padding=(1, 0))
        horizontal = F.max_pool2d(planes, (1, 3), stride=1, padding=(0, 1))
        dilated = torch.maximum(vertical, horizontal)
    else:
        dilated = F.max_pool2d(planes, 3, stride=1, padding=1)
    dilated = dilated.squeeze(1)
    return dilated if grow else -dilated


class SolidMask:
    """A ``[1, height, width]`` mask filled with ``value``."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "value": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
                "width": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
                "height": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
            }
        }

    RETURN_TYPES = ("MASK",)
    FUNCTION = "solid"
    CATEGORY = "mask"

    def solid(self, value: float, width: int, height: int) -> tuple:
        import torch

        return (torch.full((1, height, width), value, dtype=torch.float32),)


class InvertMask:
    """``1 - mask``."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"mask": ("MASK",)}}

    RETURN_TYPES = ("MASK",)
    FUNCTION = "invert"
    CATEGORY = "mask"

    def invert(self, mask: torch.Tensor) -> tuple:
        return (1.0 - mask,)


class MaskToImage:
    """A grey ``[B, H, W, 3]`` image whose three channels all equal the mask."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"mask": ("MASK",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "mask_to_image"
    CATEGORY = "mask"

    def mask_to_image(self, mask: torch.Tensor) -> tuple:
        return (as_mask_batch(mask).unsqueeze(-1).expand(-1, -1, -1, 3),)


class ImageToMask:
    """One channel of an image as a mask (no inversion, unlike LoadImage's alpha)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"image": ("IMAGE",), "channel": (list(IMAGE_CHANNELS),)}}

    RETURN_TYPES = ("MASK",)
    FUNCTION = "image_to_mask"
    CATEGORY = "mask"

    def image_to_mask(self, image: torch.Tensor, channel: str) -> tuple:
        index = IMAGE_CHANNELS.index(channel)
        if index >= image.shape[-1]:
            raise ValueError(f"the image has {image.shape[-1]} channels, so it has no {channel} channel")
        return (image[:, :, :, index],)


class GrowMask:
    """Grow (``expand`` > 0) or shrink (< 0) a mask by ``|expand|`` pixels of grey morphology."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "mask": ("MASK",),
                "expand": ("INT", {"default": 0, "min": -MAX_RESOLUTION, "max": MAX_RESOLUTION, "step": 1}),
                "tapered_corners": ("BOOLEAN", {"default": True}),
            }
        }

    RETURN_TYPES = ("MASK",)
    FUNCTION = "expand_mask"
    CATEGORY = "mask"

    def expand_mask(self, mask: torch.Tensor, expand: int, tapered_corners: bool) -> tuple:
        grown = as_mask_batch(mask)
        for _ in range(abs(expand)):
            grown = grey_morphology_step(grown, tapered_corners, grow=expand > 0)
        return (grown,)


NODE_CLASS_MAPPINGS = {
    "SolidMask": SolidMask,
    "InvertMask": InvertMask,
    "MaskToImage": MaskToImage,
    "ImageToMask": ImageToMask,
    "GrowMask": GrowMask,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "MaskToImage": "Convert Mask to Image",
    "ImageToMask": "Convert Image to Mask",
}
