"""Image nodes: create, invert, scale, crop, blend, batch and pad images.

Behaviour and specs follow ComfyUI's core image nodes (comfy-compat §9, and the exact
``/object_info`` entries in comfyui-object-info.json). ``IMAGE`` values are float32
``[B, H, W, C]`` tensors in 0..1 (comfy-compat §8). torch is imported inside the functions
(start-up speed rule, ARCHITECTURE.md).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from nodes import MAX_RESOLUTION

if TYPE_CHECKING:
    import torch

UPSCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
CROP_METHODS = ("disabled", "center")
BLEND_MODES = ("normal", "multiply", "screen", "overlay", "soft_light", "difference")


def lanczos_resize(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Resize NCHW ``samples`` with Pillow's Lanczos filter, band by band.

    As in ComfyUI, pixels go through 8-bit quantisation (truncated after clipping), because
    Pillow's Lanczos works on 8-bit images; each channel is resized as an ``L`` band, which is
    what Pillow does per band for RGB(A) images too.
    """
    import numpy as np
    import torch
    from PIL import Image

    as_bytes = np.clip(255.0 * samples.detach().float().cpu().numpy(), 0, 255).astype(np.uint8)
    resized = [
        [
            np.asarray(Image.fromarray(band).resize((width, height), resample=Image.Resampling.LANCZOS))
            for band in image
        ]
        for image in as_bytes
    ]
    result = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0)
    return result.to(device=samples.device, dtype=samples.dtype)


def scale_nchw(samples: torch.Tensor, width: int, height: int, method: str, crop: str) -> torch.Tensor:
    """Resize NCHW ``samples`` to ``width`` x ``height`` (ComfyUI's ``comfy.utils.common_upscale``).

    ``method`` is one of :data:`UPSCALE_METHODS` (``area`` is adaptive average pooling, the
    others are ``torch.nn.functional.interpolate`` modes without antialiasing, ``lanczos`` goes
    through Pillow); ``crop="center"`` first crops to the target aspect ratio.
    """
    import torch.nn.functional as F

    from diffusion.latent_ops import center_crop_to_aspect

    if method not in UPSCALE_METHODS:
        raise ValueError(f"unknown upscale method {method!r}; expected one of {', '.join(UPSCALE_METHODS)}")
    source = center_crop_to_aspect(samples, width, height) if crop == "center" else samples
    if method == "lanczos":
        return lanczos_resize(source, width, height)
    return F.interpolate(source, size=(height, width), mode=method)


def scale_image(image: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled") -> torch.Tensor:
    """Resize a BHWC ``IMAGE`` (see :func:`scale_nchw`)."""
    return scale_nchw(image.movedim(-1, 1), width, height, method, crop).movedim(1, -1)


class EmptyImage:
    """A batch of images filled with one colour given as 0xRRGGBB."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "width": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
                "height": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
                "color": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFF, "step": 1, "display": "color"}),
            }
        }

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "generate"
    CATEGORY = "image"

    def generate(self, width: int, height: int, batch_size: int = 1, color: int = 0) -> tuple:
        import torch

        rgb = [((color >> shift) & 0xFF) / 0xFF for shift in (16, 8, 0)]
        channels = [torch.full([batch_size, height, width, 1], value) for value in rgb]
        return (torch.cat(channels, dim=-1),)


class ImageInvert:
    """``1 - image`` on every channel."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"image": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "invert"
    CATEGORY = "image"

    def invert(self, image: torch.Tensor) -> tuple:
        return (1.0 - image,)


class ImageScale:
    """Resize to an exact size; a zero side keeps the aspect ratio, both zero keeps the image."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": ("IMAGE",),
                "upscale_method": (list(UPSCALE_METHODS),),
                "width": ("INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
                "height": ("INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
                "crop": (list(CROP_METHODS),),
            }
        }

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"

    def upscale(self, image: torch.Tensor, upscale_method: str, width: int, height: int, crop: str) -> tuple:
        if width == 0 and height == 0:
            return (image,)
        old_height, old_width = image.shape[1], image.shape[2]
        if width == 0:
            width = max(1, round(old_width * height / old_height))
        elif height == 0:
            height = max(1, round(old_height * width / old_width))
        return (scale_image(image, width, height, upscale_method, crop),)


class ImageScaleBy:
    """Resize by a factor; each side is rounded to the nearest pixel."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": ("IMAGE",),
                "upscale_method": (list(UPSCALE_METHODS),),
                "scale_by": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 8.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"

    def upscale(self, image: torch.Tensor, upscale_method: str, scale_by: float) -> tuple:
        width = round(image.shape[2] * scale_by)
        height = round(image.shape[1] * scale_by)
        return (scale_image(image, width, height, upscale_method),)


class ImageScaleToTotalPixels:
    """Resize keeping the aspect ratio so the image has about ``megapixels`` x 2^20 pixels."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": ("IMAGE",),
                "upscale_method": (list(UPSCALE_METHODS),),
                "megapixels": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 16.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"

    def upscale(self, image: torch.Tensor, upscale_method: str, megapixels: float) -> tuple:
        old_height, old_width = image.shape[1], image.shape[2]
        total = int(megapixels * 1024 * 1024)
        scale_by = math.sqrt(total / (old_width * old_height))
        width = round(old_width * scale_by)
        height = round(old_height * scale_by)
        return (scale_image(image, width, height, upscale_method),)


class ImageCrop:
    """Cut a ``width`` x ``height`` window at (x, y); the window is clipped at the image border."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": ("IMAGE",),
                "width": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
                "height": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
                "x": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
                "y": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
            }
        }

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "crop"
    CATEGORY = "image/transform"

    def crop(self, image: torch.Tensor, width: int, height: int, x: int, y: int) -> tuple:
        # An origin past the border is pulled back onto the last pixel, so the result is never empty.
        x = min(x, image.shape[2] - 1)
        y = min(y, image.shape[1] - 1)
        return (image[:, y : y + height, x : x + width, :],)


def blend(base: torch.Tensor, layer: torch.Tensor, mode: str) -> torch.Tensor:
    """Blend ``layer`` onto ``base`` with a separable blend mode.

    Formulas of the W3C Compositing and Blending Level 1 spec (multiply, screen, overlay, and
    soft light with its ``D(x)``: a cubic below 0.25, ``sqrt`` above); ``difference`` is the
    signed ``base - layer`` that ComfyUI uses, which the caller clamps to 0..1.
    """
    import torch

    if mode == "normal":
        return layer
    if mode == "multiply":
        return base * layer
    if mode == "screen":
        return 1 - (1 - base) * (1 - layer)
    if mode == "overlay":
        return torch.where(base <= 0.5, 2 * base * layer, 1 - 2 * (1 - base) * (1 - layer))
    if mode == "soft_light":
        darken = base - (1 - 2 * layer) * base * (1 - base)
        lighten = base + (2 * layer - 1) * (_soft_light_d(base) - base)
        return torch.where(layer <= 0.5, darken, lighten)
    if mode == "difference":
        return base - layer
    raise ValueError(f"Unsupported blend mode: {mode}")


def _soft_light_d(x: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.where(x <= 0.25, ((16 * x - 12) * x + 4) * x, torch.sqrt(x))


class ImageBlend:
    """Mix ``image2`` blended onto ``image1`` by ``blend_factor``; image2 is fitted to image1's size."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image1": ("IMAGE",),
                "image2": ("IMAGE",),
                "blend_factor": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}),
                "blend_mode": (list(BLEND_MODES),),
            }
        }

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "blend_images"
    CATEGORY = "image/postprocessing"

    def blend_images(self, image1: torch.Tensor, image2: torch.Tensor, blend_factor: float, blend_mode: str) -> tuple:
        import torch

        image2 = image2.to(image1.device)
        if image1.shape != image2.shape:
            image2 = scale_image(image2, image1.shape[2], image1.shape[1], "bicubic", "center")
        blended = blend(image1, image2, blend_mode)
        mixed = image1 * (1 - blend_factor) + blended * blend_factor
        return (torch.clamp(mixed, 0, 1),)


class ImageBatch:
    """Join two images into one batch; image2 is fitted (bilinear, center crop) to image1's size."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"image1": ("IMAGE",), "image2": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "batch"
    CATEGORY = "image"

    def batch(self, image1: torch.Tensor, image2: torch.Tensor) -> tuple:
        import torch
        import torch.nn.functional as F

        # RGB next to RGBA: the RGB one gets an opaque alpha channel.
        if image1.shape[-1] < image2.shape[-1]:
            image1 = F.pad(image1, (0, 1), mode="constant", value=1.0)
        elif image2.shape[-1] < image1.shape[-1]:
            image2 = F.pad(image2, (0, 1), mode="constant", value=1.0)
        if image1.shape[1:] != image2.shape[1:]:
            image2 = scale_image(image2, image1.shape[2], image1.shape[1], "bilinear", "center")
        return (torch.cat((image1, image2), dim=0),)


def outpaint_feather_mask(
    height: int, width: int, left: int, top: int, right: int, bottom: int, feathering: int
) -> torch.Tensor:
    """The mask over the original pixels for :class:`ImagePadForOutpaint`, ``[height, width]``.

    A pixel at distance ``d`` from the nearest *padded* side (sides without padding do not
    count) gets ``((feathering - d) / feathering) ** 2`` when ``d < feathering``, else 0, so the
    sampler may repaint a soft band along the seam. Feathering is skipped when the band would
    not fit twice into the image, as in ComfyUI.
    """
    import torch

    if not (feathering > 0 and 2 * feathering < height and 2 * feathering < width):
        return torch.zeros((height, width), dtype=torch.float32)
    rows = torch.arange(height, dtype=torch.float64).view(-1, 1)
    cols = torch.arange(width, dtype=torch.float64).view(1, -1)
    far_rows = torch.full_like(rows, height)
    far_cols = torch.full_like(cols, width)
    distance = torch.minimum(
        torch.minimum(rows if top != 0 else far_rows, height - rows if bottom != 0 else far_rows),
        torch.minimum(cols if left != 0 else far_cols, width - cols if right != 0 else far_cols),
    )
    ramp = (feathering - distance) / feathering
    return torch.where(distance < feathering, ramp * ramp, torch.zeros_like(ramp)).to(torch.float32)


class ImagePadForOutpaint:
    """Pad with mid grey and return a mask that is 1 on the padding, feathered into the image."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        side = {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}
        return {
            "required": {
                "image": ("IMAGE",),
                "left": ("INT", dict(side)),
                "top": ("INT", dict(side)),
                "right": ("INT", dict(side)),
                "bottom": ("INT", dict(side)),
                "feathering": ("INT", {"default": 40, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
            }
        }

    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "expand_image"
    CATEGORY = "image"

    def expand_image(self, image: torch.Tensor, left: int, top: int, right: int, bottom: int, feathering: int) -> tuple:
        import torch

        batch, height, width, channels = image.shape
        padded_shape = (batch, height + top + bottom, width + left + right, channels)
        padded = torch.full(padded_shape, 0.5, dtype=torch.float32, device=image.device)
        padded[:, top : top + height, left : left + width, :] = image
        mask = torch.ones((height + top + bottom, width + left + right), dtype=torch.float32, device=image.device)
        feather = outpaint_feather_mask(height, width, left, top, right, bottom, feathering)
        mask[top : top + height, left : left + width] = feather.to(image.device)
        return (padded, mask.unsqueeze(0))


NODE_CLASS_MAPPINGS = {
    "EmptyImage": EmptyImage,
    "ImageInvert": ImageInvert,
    "ImageScale": ImageScale,
    "ImageScaleBy": ImageScaleBy,
    "ImageScaleToTotalPixels": ImageScaleToTotalPixels,
    "ImageCrop": ImageCrop,
    "ImageBlend": ImageBlend,
    "ImageBatch": ImageBatch,
    "ImagePadForOutpaint": ImagePadForOutpaint,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "ImageInvert": "Invert Image",
    "ImageScale": "Upscale Image",
    "ImageScaleBy": "Upscale Image By",
    "ImageCrop": "Image Crop",
    "ImageBatch": "Batch Images",
    "ImagePadForOutpaint": "Pad Image for Outpainting",
}
