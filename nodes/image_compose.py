"""Image compositing: ImageCompositeMasked (comfy-compat §9; the latent twin is in nodes/latent.py)."""

from __future__ import annotations

from typing import Any

from nodes import MAX_RESOLUTION


class ImageCompositeMasked:
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "composite"
    CATEGORY = "image"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "destination": ("IMAGE",),
                "source": ("IMAGE",),
                "x": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
                "y": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
                "resize_source": ("BOOLEAN", {"default": False}),
            },
            "optional": {"mask": ("MASK",)},
        }

    def composite(self, destination: Any, source: Any, x: int, y: int, resize_source: bool, mask: Any = None) -> tuple:
        import torch.nn.functional as F

        from diffusion.latent_ops import composite

        # RGB beside RGBA: the RGB image gets an opaque alpha channel, so both paste channel for channel.
        if destination.shape[-1] < source.shape[-1]:
            destination = F.pad(destination, (0, 1), value=1.0)
        elif source.shape[-1] < destination.shape[-1]:
            source = F.pad(source, (0, 1), value=1.0)
        result = composite(destination.movedim(-1, 1), source.movedim(-1, 1), x, y, mask, 1, resize_source)
        return (result.movedim(1, -1),)


NODE_CLASS_MAPPINGS = {"ImageCompositeMasked": ImageCompositeMasked}

NODE_DISPLAY_NAME_MAPPINGS = {"ImageCompositeMasked": "ImageCompositeMasked"}
