"""Inpainting nodes: VAEEncodeForInpaint and InpaintModelConditioning (comfy-compat §9, §10.4).

* VAEEncodeForInpaint fills the masked pixels with grey before encoding and returns the latent
  with a `noise_mask` grown by `grow_mask_by` pixels, so only the masked area is regenerated
  (for any model; an inpainting model also sees the mask through `diffusion.inpaint`).
* InpaintModelConditioning encodes the original image (the latent to sample from) and the
  grey-filled one, which it stores with the mask in both conditionings as
  `concat_latent_image`/`concat_mask`: the extra input channels of inpainting UNets.

SetLatentNoiseMask and LatentCompositeMasked live in nodes/latent.py, ImagePadForOutpaint in
nodes/image.py.
"""

from __future__ import annotations

from typing import Any


class VAEEncodeForInpaint:
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "encode"
    CATEGORY = "latent/inpaint"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "pixels": ("IMAGE",),
            "vae": ("VAE",),
            "mask": ("MASK",),
            "grow_mask_by": ("INT", {"default": 6, "min": 0, "max": 64, "step": 1}),
        }}

    def encode(self, vae: Any, pixels: Any, mask: Any, grow_mask_by: int = 6) -> tuple:
        from diffusion.inpaint import crop_to_multiple, grey_out_masked, grow_mask, mask_to_pixels

        mask = mask_to_pixels(mask, pixels.shape[1], pixels.shape[2])
        pixels, mask = crop_to_multiple(pixels, mask, vae.downscale_ratio)
        noise_mask = grow_mask(mask, grow_mask_by).round()
        latent = vae.encode(grey_out_masked(pixels, mask))
        return ({"samples": latent, "noise_mask": noise_mask},)


class InpaintModelConditioning:
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    FUNCTION = "encode"
    CATEGORY = "conditioning/inpaint"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "vae": ("VAE",),
            "pixels": ("IMAGE",),
            "mask": ("MASK",),
            "noise_mask": ("BOOLEAN", {"default": True, "tooltip": (
                "Add a noise mask to the latent so sampling will only happen within the mask. Might improve "
                "results or completely break things depending on the model.")}),
        }}

    def encode(self, positive: list, negative: list, pixels: Any, vae: Any, mask: Any, noise_mask: bool = True) -> tuple:
        from diffusion.inpaint import crop_to_multiple, grey_out_masked, mask_to_pixels

        mask = mask_to_pixels(mask, pixels.shape[1], pixels.shape[2])
        cropped, mask = crop_to_multiple(pixels, mask, 8)
        concat_latent = vae.encode(grey_out_masked(cropped, mask))
        latent = {"samples": vae.encode(pixels)}
        if noise_mask:
            latent["noise_mask"] = mask
        values = {"concat_latent_image": concat_latent, "concat_mask": mask}
        conditionings = [[[cross_attn, dict(options, **values)] for cross_attn, options in c]
                         for c in (positive, negative)]
        return (conditionings[0], conditionings[1], latent)


NODE_CLASS_MAPPINGS = {
    "VAEEncodeForInpaint": VAEEncodeForInpaint,
    "InpaintModelConditioning": InpaintModelConditioning,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "VAEEncodeForInpaint": "VAE Encode (for Inpainting)",
    "InpaintModelConditioning": "InpaintModelConditioning",
}
