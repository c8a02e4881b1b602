"""Hint-image preprocessors for ControlNets that need no downloaded model.

* `canny`: Canny 1986, "A Computational Approach to Edge Detection", as kornia's
  `kornia.filters.canny` computes it (the Canny node's reference): greyscale (ITU-R 601
  weights), 5×5 Gaussian blur (σ = 1, reflected borders), unnormalised 3×3 Sobel gradients
  (replicated borders), non-maximum suppression along the gradient direction rounded to 45°,
  double threshold (weak 0.5, strong 1), then hysteresis: weak pixels touching a strong one
  become strong until nothing changes; the rest are dropped.
* `scribble`: thick, smoothed strokes from Canny edges, in the manner of ControlNet's
  "scribble" training data (Zhang et al. 2023, §4 "Canny/HED to scribble" synthesis).
* `luminance_depth`: a depth-like map from brightness (brighter = nearer), blurred and
  stretched to 0..1; a crude stand-in for a depth estimator.

Images are NCHW float tensors in 0..1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

GREY_WEIGHTS = (0.299, 0.587, 0.114)


def to_greyscale(image: Tensor) -> Tensor:
    """`[B, 3, H, W]` -> `[B, 1, H, W]` with ITU-R 601 weights (one channel passes through)."""
    if image.shape[1] == 1:
        return image
    weights = torch.tensor(GREY_WEIGHTS, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image[:, :3] * weights).sum(dim=1, keepdim=True)


def gaussian_kernel1d(size: int, sigma: float, device: torch.device | str = "cpu") -> Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - size // 2
    if size % 2 == 0:
        x = x + 0.5
    kernel = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return kernel / kernel.sum()


def gaussian_blur(image: Tensor, size: int = 5, sigma: float = 1.0) -> Tensor:
    """Separable Gaussian blur of `[B, C, H, W]` with reflected borders."""
    channels = image.shape[1]
    kernel = gaussian_kernel1d(size, sigma, image.device).to(image.dtype)
    pad = size // 2
    padded = F.pad(image, (pad, size - 1 - pad, pad, size - 1 - pad), mode="reflect")
    horizontal = kernel.view(1, 1, 1, size).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, size, 1).repeat(channels, 1, 1, 1)
    return F.conv2d(F.conv2d(padded, horizontal, groups=channels), vertical, groups=channels)


def sobel(image: Tensor) -> tuple[Tensor, Tensor]:
    """Unnormalised Sobel gradients (d/dx, d/dy) of `[B, 1, H, W]`, borders replicated."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=image.dtype, device=image.device)
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1)
    gradients = F.conv2d(F.pad(image, (1, 1, 1, 1), mode="replicate"), kernels)
    return gradients[:, 0:1], gradients[:, 1:2]


def _neighbour_kernels(centre: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """8 kernels `[8, 1, 3, 3]`; kernel k marks the neighbour in direction 45k° (x right, y down)."""
    kernels = torch.zeros(8, 1, 3, 3, dtype=dtype, device=device)
    for k in range(8):
        dx, dy = round(math.cos(math.radians(45 * k))), round(math.sin(math.radians(45 * k)))
        kernels[k, 0, 1, 1] = centre
        kernels[k, 0, 1 + dy, 1 + dx] = -1.0 if centre else 1.0
    return kernels


def non_maximum_suppression(magnitude: Tensor, angle_degrees: Tensor) -> Tensor:
    """Keep pixels larger than both neighbours along the gradient direction (rounded to 45°)."""
    differences = F.conv2d(magnitude, _neighbour_kernels(1.0, magnitude.dtype, magnitude.device), padding=1)
    forward = (angle_degrees / 45.0 % 8).long()
    backward = ((angle_degrees / 45.0 + 4) % 8).long()
    ahead = torch.gather(differences, 1, forward)
    behind = torch.gather(differences, 1, backward)
    return magnitude * (torch.minimum(ahead, behind) > 0.0)


def hysteresis(edges: Tensor) -> Tensor:
    """Grow strong edges (1) into touching weak ones (0.5) until stable; drop the other weak ones."""
    strong = (edges == 1.0).to(edges.dtype)
    candidates = (edges >= 0.5).to(edges.dtype)
    # A 3x3 max is "touches a strong pixel" (the pixel itself included, which changes nothing for
    # a strong one); several growth steps run between the convergence checks, which cost a pass each.
    while True:
        grown = strong
        for _ in range(8):
            grown = F.max_pool2d(grown, 3, stride=1, padding=1) * candidates
        if torch.equal(grown, strong):
            return strong
        strong = grown


def canny(image: Tensor, low_threshold: float = 0.1, high_threshold: float = 0.2, kernel_size: int = 5,
          sigma: float = 1.0, eps: float = 1e-6) -> tuple[Tensor, Tensor]:
    """Canny edges of `[B, C, H, W]` in 0..1.

    Returns:
        `(magnitude after non-maximum suppression, edges)`, both `[B, 1, H, W]`; edges are 0 or 1.
    """
    if low_threshold > high_threshold:
        raise ValueError(f"low_threshold {low_threshold} must not exceed high_threshold {high_threshold}")
    grey = to_greyscale(image.float())
    blurred = gaussian_blur(grey, kernel_size, sigma)
    gx, gy = sobel(blurred)
    magnitude = torch.sqrt(gx * gx + gy * gy + eps)
    angle = torch.round(torch.rad2deg(torch.atan2(gy, gx)) / 45.0) * 45.0
    magnitude = non_maximum_suppression(magnitude, angle)
    edges = (magnitude > low_threshold).float() * 0.5 + (magnitude > high_threshold).float() * 0.5
    return magnitude, hysteresis(edges)


def scribble(image: Tensor, low_threshold: float = 0.1, high_threshold: float = 0.2, thickness: int = 3) -> Tensor:
    """White strokes on black `[B, 1, H, W]`: Canny edges dilated by `thickness` px, smoothed, re-thresholded."""
    _, edges = canny(image, low_threshold, high_threshold)
    if thickness > 1:
        edges = F.max_pool2d(edges, kernel_size=2 * (thickness // 2) + 1, stride=1, padding=thickness // 2)
    smooth = gaussian_blur(edges, 2 * thickness + 1, thickness / 2.0)
    return (smooth > 0.5 * smooth.amax(dim=(2, 3), keepdim=True).clamp(min=1e-6)).float()


def luminance_depth(image: Tensor, blur_sigma: float = 2.0, invert: bool = False) -> Tensor:
    """A depth-like map `[B, 1, H, W]` from brightness, blurred and stretched to 0..1 per image."""
    grey = to_greyscale(image.float())
    if blur_sigma > 0:
        size = 2 * math.ceil(3 * blur_sigma) + 1
        if size < min(grey.shape[-2:]):
            grey = gaussian_blur(grey, size, blur_sigma)
    low = grey.amin(dim=(2, 3), keepdim=True)
    high = grey.amax(dim=(2, 3), keepdim=True)
    depth = (grey - low) / (high - low).clamp(min=1e-6)
    return 1.0 - depth if invert else depth
