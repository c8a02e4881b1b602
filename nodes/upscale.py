"""Model upscaling nodes: UpscaleModelLoader and ImageUpscaleWithModel (ComfyUI's comfy_extras/nodes_upscale_model.py).

The networks and the tiled running live in `diffusion.upscale`: spandrel loads the file where it
imports (it needs torchvision), Kiln's own code loads ESRGAN and SRVGGNetCompact files where it
does not, and other architectures are refused with a message that says they need spandrel.
Progress is reported per tile.
"""

from __future__ import annotations

from typing import Any

from diffusion.upscale.architectures import LOADER_DESCRIPTION
from nodes import runtime
from nodes.loaders import device_manager, model_file


class UpscaleModelLoader:
    RETURN_TYPES = ("UPSCALE_MODEL",)
    FUNCTION = "load_model"
    CATEGORY = "loaders"
    DESCRIPTION = LOADER_DESCRIPTION

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"model_name": (runtime.folders().list_files("upscale_models"),)}}

    def load_model(self, model_name: str) -> tuple:
        from diffusion.upscale.model import load_upscale_model

        return (load_upscale_model(model_file("upscale_models", model_name)),)


class ImageUpscaleWithModel:
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"upscale_model": ("UPSCALE_MODEL",), "image": ("IMAGE",)}}

    def upscale(self, upscale_model: Any, image: Any) -> tuple:
        from diffusion.upscale.model import upscale_image

        return (upscale_image(upscale_model, image, device_manager(), progress=runtime.progress),)


NODE_CLASS_MAPPINGS = {
    "UpscaleModelLoader": UpscaleModelLoader,
    "ImageUpscaleWithModel": ImageUpscaleWithModel,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "UpscaleModelLoader": "Load Upscale Model",
    "ImageUpscaleWithModel": "Upscale Image (using Model)",
}
