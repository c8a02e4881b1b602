"""Resizing and compositing of latents: interpolate modes, bislerp (spherical bilinear), masked paste."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LATENT_UPSCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "bislerp")


def repeat_to_batch_size(tensor: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut or tile the batch dimension to exactly batch_size."""
    if tensor.shape[0] > batch_size:
        return tensor[:batch_size]
    if tensor.shape[0] < batch_size:
        repeats = [math.ceil(batch_size / tensor.shape[0])] + [1] * (tensor.ndim - 1)
        return tensor.repeat(repeats)[:batch_size]
    return tensor


def center_crop_to_aspect(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Crop the last two dims symmetrically to the aspect ratio width/height (cut per side rounded)."""
    old_height, old_width = samples.shape[-2], samples.shape[-1]
    old_aspect, new_aspect = old_width / old_height, width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_width - old_width * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_height - old_height * (old_aspect / new_aspect)) / 2)
    return samples.narrow(-2, y, old_height - 2 * y).narrow(-1, x, old_width - 2 * x)


def slerp(start: torch.Tensor, end: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of [N, C] vectors (Shoemake 1985), norms interpolated linearly.

    Nearly parallel pairs keep `start`; nearly opposite pairs fall back to linear interpolation,
    where the great circle is undefined.
    """
    start_norm = start.norm(dim=-1, keepdim=True)
    end_norm = end.norm(dim=-1, keepdim=True)
    start_unit = torch.where(start_norm == 0, torch.zeros_like(start), start / start_norm)
    end_unit = torch.where(end_norm == 0, torch.zeros_like(end), end / end_norm)
    dot = (start_unit * end_unit).sum(dim=-1)
    omega = torch.acos(dot)
    sin_omega = torch.sin(omega)
    r = ratio.squeeze(-1)
    direction = ((torch.sin((1.0 - r) * omega) / sin_omega).unsqueeze(-1) * start_unit
                 + (torch.sin(r * omega) / sin_omega).unsqueeze(-1) * end_unit)
    result = direction * (start_norm * (1.0 - ratio) + end_norm * ratio)
    parallel = (dot > 1 - 1e-5).unsqueeze(-1)
    opposite = (dot < 1e-5 - 1).unsqueeze(-1)
    result = torch.where(parallel, start, result)
    return torch.where(opposite, start * (1.0 - ratio) + end * ratio, result)


def _sample_positions(old: int, new: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left index, right index and weight of each output pixel's source position (half-pixel centres)."""
    # Interpolating the index ramp itself gives exactly the positions bilinear resizing samples at.
    ramp = torch.arange(old, dtype=torch.float32).reshape(1, 1, 1, -1)
    position = F.interpolate(ramp, size=(1, new), mode="bilinear").flatten()
    left = position.to(torch.int64)
    right = torch.clamp(left + 1, max=old - 1)
    return left, right, position - position.floor()


def _slerp_resize_last_dim(samples: torch.Tensor, new: int) -> torch.Tensor:
    n, c, h, w = samples.shape
    left, right, weight = _sample_positions(w, new)
    start = samples[..., left].movedim(1, -1).reshape(-1, c)
    end = samples[..., right].movedim(1, -1).reshape(-1, c)
    ratio = weight.reshape(1, 1, new).expand(n, h, new).reshape(-1, 1)
    return slerp(start, end, ratio).reshape(n, h, new, c).movedim(-1, 1)


def bislerp(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Resize [N, C, H, W] treating each pixel's channel vector as a point to slerp: width pass, then height."""
    dtype = samples.dtype
    result = _slerp_resize_last_dim(samples.float(), width)
    result = _slerp_resize_last_dim(result.transpose(-1, -2), height).transpose(-1, -2)
    return result.to(dtype)


def upscale_latent(samples: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled") -> torch.Tensor:
    """Resize latent [N, C, H, W] to (height, width) latent pixels, optionally center-cropped first."""
    if method not in LATENT_UPSCALE_METHODS:
        raise ValueError(f"unknown upscale method {method!r}; expected one of {LATENT_UPSCALE_METHODS}")
    source = center_crop_to_aspect(samples, width, height) if crop == "center" else samples
    if method == "bislerp":
        return bislerp(source, width, height)
    return F.interpolate(source, size=(height, width), mode=method)


def composite(destination: torch.Tensor, source: torch.Tensor, x: int, y: int, mask: torch.Tensor | None = None,
              multiplier: int = 8, resize_source: bool = False) -> torch.Tensor:
    """Paste source into destination at pixel (x, y) (divided by `multiplier`), blended by mask (1 = source)."""
    destination = destination.clone()
    source = source.to(destination.device)
    if resize_source:
        source = F.interpolate(source, size=(destination.shape[2], destination.shape[3]), mode="bilinear")
    source = repeat_to_batch_size(source, destination.shape[0])
    x = max(-source.shape[3] * multiplier, min(x, destination.shape[3] * multiplier))
    y = max(-source.shape[2] * multiplier, min(y, destination.shape[2] * multiplier))
    left, top = x // multiplier, y // multiplier
    right, bottom = left + source.shape[3], top + source.shape[2]
    if mask is None:
        mask = torch.ones_like(source)
    else:
        mask = mask.to(destination.device, copy=True).reshape(-1, 1, mask.shape[-2], mask.shape[-1])
        mask = F.interpolate(mask, size=(source.shape[2], source.shape[3]), mode="bilinear")
        mask = repeat_to_batch_size(mask, source.shape[0])
    visible_width = destination.shape[3] - left + min(0, x)
    visible_height = destination.shape[2] - top + min(0, y)
    mask = mask[:, :, :visible_height, :visible_width]
    source_part = mask * source[:, :, :visible_height, :visible_width]
    destination_part = (1.0 - mask) * destination[:, :, top:bottom, left:right]
    destination[:, :, top:bottom, left:right] = source_part + destination_part
    return destination
