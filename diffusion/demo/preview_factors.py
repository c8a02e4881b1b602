"""Latent2rgb preview factors fitted to a VAE, for checkpoints whose VAE has a latent space of its own.

Live previews colour each latent pixel with a linear map, `RGB ≈ latent · F + b` (`F` is
`[C, 3]`, RGB in -1..1; see `diffusion.preview`). The published factors of each family were
fitted to that family's VAE; a checkpoint with another VAE, such as ``kiln-demo``, needs its own,
which it carries in its metadata (`diffusion.latent_formats.PREVIEW_FACTORS_KEY`).

The fit: encode real pictures (scenes of the demo data set) with the VAE, decode the latents,
average-pool each decoded picture over the VAE's f×f pixel blocks so that there is one colour per
latent pixel, and solve for `F` and `b` by least squares over all latent pixels. Latents are
taken in model space (`latent_format.process_in`), which is what the sampler hands the previewer.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from diffusion.demo.dataset import scene_batch
from diffusion.latent_formats import LatentFormat

FIT_SCENES_SEED = 424242
FIT_SCENES = 128


def fit_latent_rgb_factors(latents: Tensor, decoded: Tensor) -> tuple[Tensor, Tensor]:
    """Least-squares `F`, `b` with `pool(decoded) ≈ latents · F + b` per latent pixel.

    Args:
        latents: `[N, C, h, w]` model-space latents.
        decoded: `[N, 3, h·f, w·f]` the pictures they decode to, RGB in -1..1.

    Returns:
        `(factors [C, 3], bias [3])`, float32.
    """
    downscale = decoded.shape[-1] // latents.shape[-1]
    pooled = F.avg_pool2d(decoded.double(), downscale)
    if pooled.shape[-2:] != latents.shape[-2:]:
        raise ValueError(f"decoded pictures {tuple(decoded.shape)} do not cover latents {tuple(latents.shape)} "
                         f"in {downscale}x{downscale} blocks")
    inputs = latents.double().movedim(1, -1).reshape(-1, latents.shape[1])
    targets = pooled.movedim(1, -1).reshape(-1, 3)
    design = torch.cat([inputs, torch.ones(inputs.shape[0], 1, dtype=inputs.dtype)], dim=1)
    solution = torch.linalg.lstsq(design, targets).solution
    return solution[:-1].float(), solution[-1].float()


def demo_scene_pixels(count: int = FIT_SCENES, seed: int = FIT_SCENES_SEED) -> Tensor:
    """`count` scenes of the demo data set as `[N, 3, H, W]` pixels in -1..1."""
    images, _, _ = scene_batch(seed, 0, count)
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


@torch.no_grad()
def fit_vae_preview_factors(encode: Callable[[Tensor], Tensor], decode: Callable[[Tensor], Tensor],
                            latent_format: LatentFormat, pixels: Tensor | None = None,
                            batch: int = 64) -> tuple[Tensor, Tensor]:
    """Preview factors for a VAE: `(factors [C, 3], bias [3])` mapping model-space latents to RGB in -1..1.

    Args:
        encode: pixels `[B, 3, H, W]` in -1..1 -> VAE latents `[B, C, H/f, W/f]` (e.g.
            `AutoencoderKL.encode`; the posterior mean).
        decode: VAE latents -> pixels in -1..1 (e.g. `AutoencoderKL.decode`).
        latent_format: the checkpoint family's scaling between VAE and model latents.
        pixels: the pictures to fit on; default `demo_scene_pixels()`.
    """
    pixels = demo_scene_pixels() if pixels is None else pixels
    latents, decoded = [], []
    for start in range(0, pixels.shape[0], batch):
        latent = encode(pixels[start:start + batch])
        latents.append(latent.float().cpu())
        decoded.append(decode(latent).float().clamp(-1.0, 1.0).cpu())
    return fit_latent_rgb_factors(latent_format.process_in(torch.cat(latents)), torch.cat(decoded))


def autoencoder_preview_factors(autoencoder: torch.nn.Module, latent_format: LatentFormat,
                                pixels: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """`fit_vae_preview_factors` for an ldm `AutoencoderKL`, run on its device in its dtype."""
    parameter = next(autoencoder.parameters())

    def encode(batch: Tensor) -> Tensor:
        return autoencoder.encode(batch.to(parameter))

    return fit_vae_preview_factors(encode, autoencoder.decode, latent_format, pixels)
