"""The VAE value: IMAGE tensors in, unscaled latents out, and back (comfy-compat §8, §9).

Wraps an `AutoencoderKL` with the conversions ComfyUI applies: images `[B, H, W, C]` in 0..1
are cropped to a multiple of the downscale ratio (centred), mapped to -1..1 and encoded to
the posterior mean; decoded images are mapped back to 0..1 and clamped. Batches are split
to fit memory, and an image too large for the device falls back to tiles whose overlaps
are blended with a linear feather, so no seam shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor, nn

from diffusion.devices import DeviceManager
from diffusion.latent_formats import SD15, LatentFormat

log = logging.getLogger(__name__)

# Peak activation bytes per image pixel, per unit of `ch`, per element byte: measured on the
# SD KL-f8 VAE on an H200 (decode 9.5-11.6, encode 7.0, in bf16 and fp32), rounded up.
_DECODE_BYTES_PER_PIXEL_CH = 12
_ENCODE_BYTES_PER_PIXEL_CH = 8


def crop_to_multiple(pixels: Tensor, ratio: int) -> Tensor:
    """Centre-crop `[B, H, W, C]` so H and W are multiples of `ratio` (as ComfyUI's VAE encode)."""
    height = pixels.shape[1] // ratio * ratio
    width = pixels.shape[2] // ratio * ratio
    top = (pixels.shape[1] % ratio) // 2
    left = (pixels.shape[2] % ratio) // 2
    return pixels[:, top:top + height, left:left + width, :]


def tile_starts(size: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Start offsets of full tiles covering `size`, the last one flush with the end."""
    if size <= tile:
        return [0]
    # An aligned stride keeps every start aligned without shrinking the overlap.
    stride = max((tile - overlap) // align * align, align)
    starts = list(range(0, size - tile, stride))
    starts.append((size - tile) // align * align)
    return sorted(set(starts))


def feather(length: int, ramp: int, at_start: bool, at_end: bool) -> Tensor:
    """Weights along one side of a tile: rising linearly over `ramp` where it overlaps a neighbour."""
    weights = torch.ones(length)
    if ramp > 0:
        ramp_weights = (torch.arange(min(ramp, length)) + 1.0) / ramp
        if at_start:
            weights[: len(ramp_weights)] = torch.minimum(weights[: len(ramp_weights)], ramp_weights)
        if at_end:
            weights[length - len(ramp_weights):] = torch.minimum(
                weights[length - len(ramp_weights):], ramp_weights.flip(0))
    return weights


def tiled_apply(fn: Callable[[Tensor], Tensor], x: Tensor, tile: tuple[int, int], overlap: int,
                scale: float, out_channels: int, align: int = 1) -> Tensor:
    """Apply a resolution-changing function tile by tile and blend the overlaps.

    Args:
        fn: maps `[B, C, th, tw]` to `[B, out_channels, th·scale, tw·scale]`.
        x: `[B, C, H, W]`.
        tile: (height, width) of a tile in input pixels.
        overlap: input pixels shared by neighbouring tiles.
        scale: output size / input size (8 to decode, 1/8 to encode).
        align: tile starts are multiples of this (the encoder's downscale ratio).

    Returns:
        `[B, out_channels, H·scale, W·scale]` float32 on the CPU.
    """
    batch, _, height, width = x.shape
    out_h, out_w = round(height * scale), round(width * scale)
    total = torch.zeros(batch, out_channels, out_h, out_w)
    weight = torch.zeros(1, 1, out_h, out_w)
    tile_h, tile_w = min(tile[0], height), min(tile[1], width)
    ramp = round(overlap * scale)
    for top in tile_starts(height, tile_h, overlap, align):
        for left in tile_starts(width, tile_w, overlap, align):
            out = fn(x[:, :, top:top + tile_h, left:left + tile_w]).float().cpu()
            o_top, o_left = round(top * scale), round(left * scale)
            o_h, o_w = out.shape[-2:]
            mask = (feather(o_h, ramp, top > 0, top + tile_h < height)[:, None]
                    * feather(o_w, ramp, left > 0, left + tile_w < width)[None, :])
            total[:, :, o_top:o_top + o_h, o_left:o_left + o_w] += out * mask
            weight[:, :, o_top:o_top + o_h, o_left:o_left + o_w] += mask
    return total / weight


class VAE:
    """Encodes IMAGEs to LATENTs and decodes them back.

    Attributes:
        autoencoder: the network (`diffusion.models.vae.AutoencoderKL`).
        devices: where it runs; computes in `devices.vae_dtype`.
        latent_format: the latent space it produces (for previews and channel counts).
    """

    def __init__(self, autoencoder: nn.Module, devices: DeviceManager, latent_format: LatentFormat = SD15):
        self.autoencoder = autoencoder
        self.devices = devices
        self.latent_format = latent_format
        config = autoencoder.config
        self.downscale_ratio: int = config.downscale_ratio
        self.latent_channels: int = config.z_channels
        self._ch: int = config.ch

    def torch_modules(self) -> list[nn.Module]:
        return [self.autoencoder]

    # -- memory ------------------------------------------------------------------------

    def _element_size(self) -> int:
        return torch.finfo(self.devices.vae_dtype).bits // 8

    def memory_used_decode(self, latent_shape: tuple[int, ...]) -> int:
        """Estimated peak bytes to decode one latent of `[B, C, h, w]` (per batch item)."""
        pixels = latent_shape[2] * latent_shape[3] * self.downscale_ratio**2
        return pixels * self._ch * _DECODE_BYTES_PER_PIXEL_CH * self._element_size()

    def memory_used_encode(self, image_shape: tuple[int, ...]) -> int:
        """Estimated peak bytes to encode one image of `[B, H, W, C]` (per batch item)."""
        return image_shape[1] * image_shape[2] * self._ch * _ENCODE_BYTES_PER_PIXEL_CH * self._element_size()

    def _batch_size(self, bytes_per_item: int) -> int:
        return max(1, self.devices.free_memory() // max(bytes_per_item, 1))

    def _fits(self, bytes_per_item: int) -> bool:
        return bytes_per_item < self.devices.free_memory()

    # -- running -----------------------------------------------------------------------

    def _run(self, fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        device, dtype = self.devices.device, self.devices.vae_dtype
        self.devices.load(self)
        with self.devices.inference():
            return fn(x.to(device, dtype)).float().cpu()

    def _encode_nchw(self, pixels: Tensor) -> Tensor:
        return self._run(self.autoencoder.encode, pixels * 2.0 - 1.0)

    def _decode_nchw(self, latent: Tensor) -> Tensor:
        return ((self._run(self.autoencoder.decode, latent) + 1.0) / 2.0).clamp(0.0, 1.0)

    def encode(self, pixels: Tensor) -> Tensor:
        """IMAGE `[B, H, W, C]` 0..1 -> unscaled latent `[B, z, H/8, W/8]` (posterior mean), float32 CPU."""
        pixels = crop_to_multiple(pixels[..., :3], self.downscale_ratio).movedim(-1, 1).float()
        per_item = self.memory_used_encode(tuple(pixels.movedim(1, -1).shape))
        if not self._fits(per_item):
            log.warning("image too large for one VAE pass on %s; encoding in tiles", self.devices.device)
            return self.encode_tiled(pixels.movedim(1, -1))
        step = self._batch_size(per_item)
        try:
            return torch.cat([self._encode_nchw(pixels[i:i + step]) for i in range(0, len(pixels), step)])
        except Exception as error:
            if not self.devices.is_out_of_memory(error):
                raise
            log.warning("out of memory in VAE encode; retrying in tiles")
            return self.encode_tiled(pixels.movedim(1, -1))

    def decode(self, latent: Tensor) -> Tensor:
        """Unscaled latent `[B, z, h, w]` -> IMAGE `[B, h·8, w·8, 3]` 0..1, float32 CPU."""
        per_item = self.memory_used_decode(tuple(latent.shape))
        if not self._fits(per_item):
            log.warning("latent too large for one VAE pass on %s; decoding in tiles", self.devices.device)
            return self.decode_tiled(latent)
        step = self._batch_size(per_item)
        try:
            images = torch.cat([self._decode_nchw(latent[i:i + step]) for i in range(0, len(latent), step)])
        except Exception as error:
            if not self.devices.is_out_of_memory(error):
                raise
            log.warning("out of memory in VAE decode; retrying in tiles")
            return self.decode_tiled(latent)
        return images.movedim(1, -1)

    def decode_tiled(self, latent: Tensor, tile_x: int = 64, tile_y: int = 64, overlap: int = 16) -> Tensor:
        """Decode in overlapping tiles (sizes in latent pixels) -> IMAGE `[B, H, W, 3]`."""
        images = [tiled_apply(self._decode_nchw, latent[i:i + 1], (tile_y, tile_x), overlap,
                              self.downscale_ratio, 3) for i in range(len(latent))]
        return torch.cat(images).movedim(1, -1)

    def encode_tiled(self, pixels: Tensor, tile_x: int = 512, tile_y: int = 512, overlap: int = 64) -> Tensor:
        """Encode in overlapping tiles (sizes in image pixels) -> latent `[B, z, H/8, W/8]`."""
        ratio = self.downscale_ratio
        pixels = crop_to_multiple(pixels[..., :3], ratio).movedim(-1, 1).float()
        tile = (max(tile_y // ratio * ratio, ratio), max(tile_x // ratio * ratio, ratio))
        latents = [tiled_apply(self._encode_nchw, pixels[i:i + 1], tile, overlap, 1.0 / ratio,
                               self.latent_channels, align=ratio) for i in range(len(pixels))]
        return torch.cat(latents)


class PixelSpaceVAE(VAE):
    """The "pixel_space" choice of VAELoader: latents are the image itself in -1..1, NCHW."""

    def __init__(self, devices: DeviceManager):  # noqa: D107 - no network to wrap
        self.autoencoder = None
        self.devices = devices
        self.latent_format = SD15
        self.downscale_ratio = 1
        self.latent_channels = 3
        self._ch = 1

    def torch_modules(self) -> list[nn.Module]:
        return []

    def encode(self, pixels: Tensor) -> Tensor:
        return pixels[..., :3].movedim(-1, 1).float() * 2.0 - 1.0

    def decode(self, latent: Tensor) -> Tensor:
        return ((latent.float() + 1.0) / 2.0).clamp(0.0, 1.0).movedim(1, -1)

    def encode_tiled(self, pixels: Tensor, tile_x: int = 512, tile_y: int = 512, overlap: int = 64) -> Tensor:
        return self.encode(pixels)

    def decode_tiled(self, latent: Tensor, tile_x: int = 64, tile_y: int = 64, overlap: int = 16) -> Tensor:
        return self.decode(latent)
