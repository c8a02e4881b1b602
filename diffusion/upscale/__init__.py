"""Super-resolution models for ImageUpscaleWithModel: ESRGAN RRDBNet, SRVGGNetCompact, tiled running."""

from diffusion.upscale.model import UpscaleModel, load_upscale_model, tiled_upscale, upscale_image

__all__ = ["UpscaleModel", "load_upscale_model", "tiled_upscale", "upscale_image"]
