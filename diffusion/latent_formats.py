"""How a model family's latents are scaled and previewed (comfy-compat §8 and §12).

LATENT values between nodes are unscaled VAE latents. The sampler scales them into the
diffusion model's space with `process_in` and back with `process_out`; the previewer maps
an x0 prediction to RGB with the family's `latent_rgb_factors` (rows = latent channels,
columns = R, G, B; fitted linear maps as published with ComfyUI's latent formats).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class LatentFormat:
    """A latent space: channel count, affine scaling into model space, preview factors."""

    name: str
    latent_channels: int
    scale_factor: float
    shift_factor: float = 0.0
    latent_rgb_factors: tuple[tuple[float, ...], ...] = ()
    latent_rgb_factors_bias: tuple[float, ...] | None = None
    taesd_decoder_name: str | None = None

    def process_in(self, latent: Tensor) -> Tensor:
        """VAE latent -> model latent: `(x - shift) · scale`."""
        return (latent - self.shift_factor) * self.scale_factor

    def process_out(self, latent: Tensor) -> Tensor:
        """Model latent -> VAE latent: `x / scale + shift`."""
        return latent / self.scale_factor + self.shift_factor

    def rgb_factors(self, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
        """`[C, 3]` matrix for the latent2rgb preview."""
        return torch.tensor(self.latent_rgb_factors, dtype=dtype, device=device)

    def rgb_bias(self, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor | None:
        """`[3]` bias for the latent2rgb preview, None when the family has none."""
        if self.latent_rgb_factors_bias is None:
            return None
        return torch.tensor(self.latent_rgb_factors_bias, dtype=dtype, device=device)


SD15 = LatentFormat(
    name="SD15",
    latent_channels=4,
    scale_factor=0.18215,
    latent_rgb_factors=(
        (0.3512, 0.2297, 0.3227),
        (0.3250, 0.4974, 0.2350),
        (-0.2829, 0.1762, 0.2721),
        (-0.2120, -0.2616, -0.7177),
    ),
    taesd_decoder_name="taesd_decoder",
)
"""SD 1.x and 2.x share the latent space of the same KL-f8 VAE."""

SDXL = LatentFormat(
    name="SDXL",
    latent_channels=4,
    scale_factor=0.13025,
    latent_rgb_factors=(
        (0.3651, 0.4232, 0.4341),
        (-0.2533, -0.0042, 0.1068),
        (0.1076, 0.1111, -0.0362),
        (-0.3165, -0.2492, -0.2188),
    ),
    latent_rgb_factors_bias=(0.1084, -0.0175, -0.0011),
    taesd_decoder_name="taesdxl_decoder",
)
"""Kept beside SD15 as the seam for the SDXL family."""
