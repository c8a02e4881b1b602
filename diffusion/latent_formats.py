"""How a model family's latents are scaled and previewed (comfy-compat §8 and §12).

LATENT values between nodes are unscaled VAE latents. The sampler scales them into the
diffusion model's space with `process_in` and back with `process_out`; the previewer maps
an x0 prediction to RGB with the family's `latent_rgb_factors` (rows = latent channels,
columns = R, G, B; fitted linear maps as published with ComfyUI's latent formats).

A checkpoint whose VAE has a latent space of its own (a smaller VAE in a family's layout) may
carry its own preview factors in its safetensors metadata under `PREVIEW_FACTORS_KEY`, as JSON
`{"factors": [[r, g, b], ...one row per latent channel], "bias": [r, g, b]}` (bias optional).
They map a model-space latent (after `process_in`: what the sampler's x0 is) to RGB in -1..1,
as the families' factors do. The loaders use them in place of the family's; a value of the
wrong shape or with non-finite numbers is ignored with a warning.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

log = logging.getLogger(__name__)

PREVIEW_FACTORS_KEY = "kiln.latent_rgb_factors"


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


RGBFactors = tuple[tuple[float, ...], ...]


def parse_preview_factors(text: str, latent_channels: int) -> tuple[RGBFactors, tuple[float, ...] | None]:
    """The `(factors, bias)` of a `PREVIEW_FACTORS_KEY` metadata value.

    Raises:
        ValueError: not JSON, or factors that are not `latent_channels` rows of 3 finite numbers,
            or a bias that is not 3 finite numbers.
    """
    try:
        value = json.loads(text)
    except (TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"not JSON ({error})") from error
    if not isinstance(value, dict) or "factors" not in value:
        raise ValueError('expected a JSON object with "factors" (and optionally "bias")')
    rows = value["factors"]
    if not isinstance(rows, list) or len(rows) != latent_channels:
        raise ValueError(f"factors must be {latent_channels} rows (one per latent channel) of [r, g, b]")
    factors = tuple(_rgb(row, "factors row") for row in rows)
    bias = value.get("bias")
    return factors, (None if bias is None else _rgb(bias, "bias"))


def _rgb(value: object, what: str) -> tuple[float, ...]:
    if (not isinstance(value, list) or len(value) != 3
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in value)):
        raise ValueError(f"each {what} must be three finite numbers [r, g, b], not {value!r}")
    return tuple(float(x) for x in value)


def preview_factors_json(factors: Tensor | Sequence[Sequence[float]], bias: Tensor | Sequence[float] | None) -> str:
    """The `PREVIEW_FACTORS_KEY` metadata value for `[C, 3]` factors and a `[3]` bias (or None)."""
    value: dict[str, list] = {"factors": [[round(float(x), 6) for x in row] for row in factors]}
    if bias is not None:
        value["bias"] = [round(float(x), 6) for x in bias]
    return json.dumps(value)


def with_file_preview_factors(latent_format: LatentFormat, metadata: Mapping[str, str],
                              source: Path | str) -> LatentFormat:
    """`latent_format` with the preview factors a weight file's metadata carries, if it carries valid ones.

    Args:
        latent_format: the family's format (scaling and channels stay the family's).
        metadata: the file's safetensors `__metadata__`.
        source: the file, named in the warning about an invalid value.
    """
    text = metadata.get(PREVIEW_FACTORS_KEY)
    if text is None:
        return latent_format
    try:
        factors, bias = parse_preview_factors(text, latent_format.latent_channels)
    except ValueError as error:
        log.warning("%s: ignoring %s in the file's metadata: %s", source, PREVIEW_FACTORS_KEY, error)
        return latent_format
    return dataclasses.replace(latent_format, latent_rgb_factors=factors, latent_rgb_factors_bias=bias)
