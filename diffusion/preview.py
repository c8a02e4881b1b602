"""Step previews of the sampler's x0 prediction (comfy-compat §12): latent2rgb or the TAESD decoder.

latent2rgb uses the model's `latent_format` factors: its family's, or the checkpoint's own where
its metadata carries them (`diffusion.latent_formats.PREVIEW_FACTORS_KEY`). "taesd" needs the
family's decoder file (models/vae_approx/taesd_decoder.safetensors for SD1/2); without it, or with
a file that does not load, it falls back to latent2rgb with a warning, as ComfyUI does.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from PIL import Image

log = logging.getLogger(__name__)

PREVIEW_METHODS = ("none", "auto", "latent2rgb", "taesd")


class Latent2RGBPreviewer:
    """x0 [B, C, h, w] -> a PIL RGB image of item 0 via a fitted C×3 linear map (+ bias)."""

    def __init__(self, rgb_factors, rgb_bias=None) -> None:
        self.factors = torch.as_tensor(rgb_factors, dtype=torch.float32)
        self.bias = None if rgb_bias is None else torch.as_tensor(rgb_bias, dtype=torch.float32)

    def decode(self, x0: torch.Tensor) -> Image.Image:
        latent = x0[0] if x0.ndim == 4 else x0[0, :, 0]  # batch item 0; frame 0 of a video latent
        rgb = latent.float().cpu().movedim(0, -1) @ self.factors
        if self.bias is not None:
            rgb = rgb + self.bias
        pixels = (((rgb + 1.0) / 2.0).clamp(0, 1) * 255.0).to(torch.uint8)  # truncates, as ComfyUI
        return Image.fromarray(pixels.numpy())


class TAESDPreviewer:
    """x0 [B, C, h, w] -> an RGB image of item 0 at 8× the latent size through the TAESD decoder."""

    def __init__(self, decoder) -> None:
        self.decoder = decoder

    def decode(self, x0: torch.Tensor) -> Image.Image:
        latent = x0[:1] if x0.ndim == 4 else x0[:1, :, 0]
        parameter = next(self.decoder.parameters())
        with torch.inference_mode():
            rgb = self.decoder(latent.to(parameter))[0].float().cpu()  # 0..1
        pixels = (rgb.clamp(0, 1) * 255.0).to(torch.uint8).movedim(0, -1)
        return Image.fromarray(pixels.numpy())


def make_previewer(latent_format, method: str, taesd_path: Path | None = None):
    """The previewer for a preview method name, or None for "none" (or a format without factors).

    `taesd_path` is the family's TAESD decoder file when the server has one.
    """
    if method not in PREVIEW_METHODS:
        raise ValueError(f"unknown preview method {method!r}; expected one of {PREVIEW_METHODS}")
    if method == "none":
        return None
    if method == "taesd":
        if taesd_path is None:
            log.warning("no TAESD decoder for %s in vae_approx; previewing with latent2rgb",
                        getattr(latent_format, "name", "this model"))
        else:
            from .taesd import load_taesd_decoder

            try:
                return TAESDPreviewer(load_taesd_decoder(taesd_path, latent_format.latent_channels))
            except ValueError as error:
                log.warning("%s; previewing with latent2rgb", error)
    factors = getattr(latent_format, "latent_rgb_factors", None)
    if not factors:
        return None
    return Latent2RGBPreviewer(factors, getattr(latent_format, "latent_rgb_factors_bias", None))
