"""The extra input channels of inpainting UNets (SD1.5/SD2 inpainting: 4 + 1 mask + 4 masked-image latent).

An inpainting checkpoint is recognised by its `input_blocks.0.0.weight` taking more channels
than the latent has (9 for 4-channel latents). Its UNet input is
`cat([x_in, mask, masked_image_latent])`, where, per conditioning entry (ComfyUI's
`BaseModel.concat_cond`):

* `masked_image_latent` is the entry's `concat_latent_image` (InpaintModelConditioning; moved
  into model space) or else the latent being sampled (VAEEncodeForInpaint's grey-filled one);
* `mask` is the entry's `concat_mask` or else the LATENT's `noise_mask`, resized (bilinear) to
  the latent and rounded to 0/1;
* with neither mask, the model sees "nothing masked out": mask 1 everywhere and the latent of
  a mid-grey image.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

# The SD1 VAE's latent of a mid-grey (0 in -1..1) image, in model space; ComfyUI uses the same.
BLANK_INPAINT_LATENT = (0.8223, -0.6876, 0.6364, 0.1380)


def extra_input_channels(model: Any) -> int:
    """Channels the UNet takes beyond the latent's (0 for ordinary models)."""
    config = getattr(getattr(model, "unet", None), "config", None)
    latent_format = getattr(model, "latent_format", None)
    if config is None or latent_format is None:
        return 0
    return max(0, config.in_channels - latent_format.latent_channels)


def _fit(tensor: Tensor, shape: torch.Size | tuple[int, ...]) -> Tensor:
    """Resize `[B, C, h, w]` to the latent's spatial size (bilinear) and repeat/cut to its batch."""
    if tuple(tensor.shape[-2:]) != tuple(shape[-2:]):
        tensor = F.interpolate(tensor, size=tuple(shape[-2:]), mode="bilinear")
    batch = shape[0]
    if tensor.shape[0] < batch:
        tensor = tensor.repeat(-(-batch // tensor.shape[0]), 1, 1, 1)
    return tensor[:batch]


def blank_inpaint_latent(shape: torch.Size | tuple[int, ...], device: torch.device | str) -> Tensor:
    values = torch.tensor(BLANK_INPAINT_LATENT, device=device)
    return values.view(1, -1, 1, 1).expand(shape[0], len(BLANK_INPAINT_LATENT), shape[-2], shape[-1]).clone()


def inpaint_concat(model: Any, options: dict, shape: torch.Size | tuple[int, ...], device: torch.device | str,
                   latent_image: Tensor | None = None, denoise_mask: Tensor | None = None) -> Tensor | None:
    """The `[B, 1 + C, h, w]` mask + masked-image channels for one conditioning entry, or None.

    Args:
        model: the MODEL value (its UNet's `in_channels` decides whether anything is needed).
        options: the conditioning entry's dict (`concat_latent_image`, `concat_mask`).
        shape: the noise's shape `[B, C, h, w]`.
        latent_image: the latent being sampled, in model space.
        denoise_mask: the LATENT's noise mask, any `[.., H, W]` shape.
    """
    if extra_input_channels(model) == 0:
        return None
    mask = options.get("concat_mask", denoise_mask)
    image = options.get("concat_latent_image")
    if image is not None:
        image = model.latent_format.process_in(image.float())
    else:
        image = latent_image
    if mask is None or image is None:
        ones = torch.ones((shape[0], 1, shape[-2], shape[-1]), device=device)
        return torch.cat([ones, blank_inpaint_latent(shape, device)], dim=1)
    mask = mask.float().reshape((-1, 1) + tuple(mask.shape[-2:])).to(device)
    mask = _fit(mask, shape).round()
    return torch.cat([mask, _fit(image.float().to(device), shape)], dim=1)


# -- pixel-side preparation (VAEEncodeForInpaint, InpaintModelConditioning) ---------------------------


def mask_to_pixels(mask: Tensor, height: int, width: int) -> Tensor:
    """A MASK (`[H, W]`, `[B, H, W]` or `[B, 1, H, W]`) as `[B, 1, height, width]`, resized bilinearly."""
    mask = mask.float().reshape((-1, 1) + tuple(mask.shape[-2:]))
    return F.interpolate(mask, size=(height, width), mode="bilinear")


def crop_to_multiple(pixels: Tensor, mask: Tensor, ratio: int) -> tuple[Tensor, Tensor]:
    """Centre-crop IMAGE `[B, H, W, C]` and its `[B, 1, H, W]` mask to multiples of `ratio`."""
    height, width = pixels.shape[1] // ratio * ratio, pixels.shape[2] // ratio * ratio
    top, left = (pixels.shape[1] % ratio) // 2, (pixels.shape[2] % ratio) // 2
    return (pixels[:, top:top + height, left:left + width, :],
            mask[:, :, top:top + height, left:left + width])


def grey_out_masked(pixels: Tensor, mask: Tensor) -> Tensor:
    """Set the masked pixels (mask rounded to 0/1) to 0.5 grey; the rest stay as they are."""
    keep = (1.0 - mask.round()).squeeze(1).unsqueeze(-1)
    return (pixels[..., :3] - 0.5) * keep + 0.5


def grow_mask(mask: Tensor, pixels: int) -> Tensor:
    """Dilate a `[B, 1, H, W]` mask (rounded) by a `pixels`×`pixels` box of ones, clamped to 0..1, same size."""
    if pixels == 0:
        return mask
    kernel = torch.ones((1, 1, pixels, pixels), dtype=mask.dtype, device=mask.device)
    padding = -(-(pixels - 1) // 2)
    grown = torch.clamp(F.conv2d(mask.round(), kernel, padding=padding), 0, 1)
    return grown[:, :, : mask.shape[2], : mask.shape[3]]
