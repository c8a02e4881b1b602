"""The UPSCALE_MODEL value: loading a super-resolution network and running it tile by tile.

Where the `spandrel` package imports (it imports torchvision, which GPU installs have), spandrel
loads the file: it knows some forty architectures, and its model call pads each tile to the
network's size requirements. Where it does not import (PyPI's torchvision does not import beside
a CPU build of torch), Kiln's own code loads the two commonest families, recognised from their
tensor names and shapes: ESRGAN/Real-ESRGAN RRDBNets (BasicSR keys, or the original ESRGAN
`model.N` keys as 4x-UltraSharp has them) and the compact SRVGGNet; a file of any other
architecture is refused with a message that names the file and says it needs spandrel.

Upscaling runs on overlapping tiles (default 512 px, 32 px overlap, as ComfyUI's
ImageUpscaleWithModel) whose overlaps are blended with a linear feather; when the device runs
out of memory the tile size is halved and the image done again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from diffusion.upscale.architectures import needs_spandrel_message
from diffusion.upscale.rrdbnet import convert_old_esrgan, is_old_esrgan, rrdbnet_from_state_dict
from diffusion.upscale.srvgg import is_srvgg, srvgg_from_state_dict
from diffusion.vae_model import feather, tile_starts

log = logging.getLogger(__name__)

MIN_TILE = 128


class UpscaleModel:
    """A super-resolution network and its scale.

    Attributes:
        model: the network's module (what the device manager moves).
        scale: the integer upscaling factor.
        architecture: "RRDBNet", "SRVGGNetCompact" or spandrel's name ("ESRGAN", "SPAN", ...).
        loader: "kiln" (Kiln's own network) or "spandrel".
        tiled: False for networks that tile internally (spandrel's `ModelTiling.INTERNAL`).
    """

    def __init__(self, model: nn.Module, scale: int, architecture: str, loader: str = "kiln",
                 forward: Callable[[Tensor], Tensor] | None = None, tiled: bool = True):
        self.model = model
        self.scale = int(scale)
        self.architecture = architecture
        self.loader = loader
        self.tiled = tiled
        self._forward = forward if forward is not None else model

    def __call__(self, pixels: Tensor) -> Tensor:
        """One tile `[1, C, h, w]` in 0..1 (the model's device and dtype) -> `[1, C, h·s, w·s]`."""
        return self._forward(pixels)

    def torch_modules(self) -> list[nn.Module]:
        return [self.model]

    def __repr__(self) -> str:
        return f"UpscaleModel({self.architecture}, x{self.scale}, {self.loader})"


def _strip_prefix(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    state = {key: state_dict[key] for key in state_dict}
    # Generators saved from a DataParallel wrapper carry a "module." prefix.
    if any(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): value for key, value in state.items()}
    return state


def import_spandrel() -> tuple[ModuleType | None, str]:
    """The spandrel module where it imports, else None and why it does not ("" when it does)."""
    try:
        import spandrel
    except Exception as error:  # not installed, or torchvision missing or built for another torch
        return None, f"{type(error).__name__}: {error}"
    return spandrel, ""


def upscale_model_from_state_dict(state_dict: Mapping[str, Tensor], source: Path | str = "<state dict>") -> UpscaleModel:
    """Build the network of a state dict (eval mode, no gradients): spandrel first, else Kiln's own.

    Raises:
        ValueError: neither loads it; the message names `source` and, when spandrel does not
            import, the architecture the file looks like and that it needs spandrel.
    """
    state = _strip_prefix(state_dict)
    spandrel, why_unavailable = import_spandrel()
    spandrel_error: Exception | None = None
    if spandrel is not None:
        try:
            descriptor = spandrel.ModelLoader().load_from_state_dict(dict(state))
        except spandrel.UnsupportedModelError as error:
            spandrel_error = error
        except Exception as error:  # a recognised file that spandrel could not build: try Kiln's own
            log.warning("%s: spandrel could not load it (%s); trying Kiln's built-in upscalers", source, error)
            spandrel_error = error
        else:
            return _from_spandrel(spandrel, descriptor, source)
    builtin = builtin_upscale_model(state)
    if builtin is not None:
        return builtin
    if spandrel is None:
        raise ValueError(needs_spandrel_message(str(source), state, why_unavailable))
    raise ValueError(f"{source}: neither spandrel nor Kiln's built-in upscalers load this file "
                     f"(spandrel: {spandrel_error})")


def _from_spandrel(spandrel: ModuleType, descriptor: Any, source: Path | str) -> UpscaleModel:
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ValueError(f"{source}: a {descriptor.architecture.name} {descriptor.purpose} model, "
                         f"not a single-image upscale model")
    descriptor.model.eval().requires_grad_(False)
    return UpscaleModel(descriptor.model, descriptor.scale, descriptor.architecture.name, loader="spandrel",
                        forward=descriptor, tiled=descriptor.tiling != spandrel.ModelTiling.INTERNAL)


def builtin_upscale_model(state_dict: Mapping[str, Tensor]) -> UpscaleModel | None:
    """An ESRGAN RRDBNet or SRVGGNetCompact built by Kiln's own code, or None for other architectures."""
    state = dict(state_dict)
    if is_old_esrgan(state):
        state = convert_old_esrgan(state)
    if "conv_first.weight" in state and "body.0.rdb1.conv1.weight" in state:
        model: nn.Module = rrdbnet_from_state_dict(state)
        name = "RRDBNet"
    elif is_srvgg(state):
        model = srvgg_from_state_dict(state)
        name = "SRVGGNetCompact"
    else:
        return None
    return UpscaleModel(model.eval().requires_grad_(False), model.scale, name)


def load_upscale_model(path: str | Path) -> UpscaleModel:
    """UpscaleModelLoader: read a file (safetensors, or a pickle through weights_only) and build its network."""
    from diffusion.loading.files import read_state_dict

    path = Path(path)
    return upscale_model_from_state_dict(read_state_dict(path), path)


def tiled_upscale(fn: Callable[[Tensor], Tensor], image: Tensor, scale: int, tile: int = 512, overlap: int = 32,
                  progress: Callable[[int, int], None] | None = None) -> Tensor:
    """Apply an upscaler to `[B, C, H, W]` in overlapping tiles, blending overlaps linearly.

    Args:
        fn: the network on one tile.
        scale: output pixels per input pixel.
        progress: called with (tiles done, total tiles) after each tile.

    Returns:
        `[B, C_out, H·scale, W·scale]` float32 on the CPU.
    """
    batch, _, height, width = image.shape
    tile_h, tile_w = min(tile, height), min(tile, width)
    tops, lefts = tile_starts(height, tile_h, overlap), tile_starts(width, tile_w, overlap)
    total_tiles = batch * len(tops) * len(lefts)
    done = 0
    results = []
    ramp = overlap * scale
    for item in range(batch):
        total: Tensor | None = None
        weight = torch.zeros(1, 1, height * scale, width * scale)
        for top in tops:
            for left in lefts:
                out = fn(image[item:item + 1, :, top:top + tile_h, left:left + tile_w]).float().cpu()
                if total is None:
                    total = torch.zeros(1, out.shape[1], height * scale, width * scale)
                mask = (feather(out.shape[-2], ramp, top > 0, top + tile_h < height)[:, None]
                        * feather(out.shape[-1], ramp, left > 0, left + tile_w < width)[None, :])
                rows = slice(top * scale, top * scale + out.shape[-2])
                cols = slice(left * scale, left * scale + out.shape[-1])
                total[:, :, rows, cols] += out * mask
                weight[:, :, rows, cols] += mask
                done += 1
                if progress is not None:
                    progress(done, total_tiles)
        results.append(total / weight)
    return torch.cat(results)


def upscale_image(upscale_model: UpscaleModel, image: Tensor, devices: Any, tile: int = 512, overlap: int = 32,
                  progress: Callable[[int, int], None] | None = None) -> Tensor:
    """IMAGE `[B, H, W, C]` -> IMAGE `[B, H·s, W·s, C]` clamped to 0..1 (ImageUpscaleWithModel).

    Models that tile internally get the whole image. Halves the tile size after an out-of-memory
    error, down to 128 px.
    """
    devices.load(upscale_model)
    device = devices.device
    dtype = next(upscale_model.model.parameters()).dtype
    pixels = image.movedim(-1, 1).float()
    if not upscale_model.tiled:
        tile = max(tile, *pixels.shape[-2:])

    def run(tile_pixels: Tensor) -> Tensor:
        with devices.inference():
            return upscale_model(tile_pixels.to(device, dtype))

    while True:
        try:
            out = tiled_upscale(run, pixels, upscale_model.scale, tile, overlap, progress)
            break
        except Exception as error:
            if not devices.is_out_of_memory(error) or tile // 2 < MIN_TILE:
                raise
            tile //= 2
            log.warning("out of memory while upscaling; retrying with %d px tiles", tile)
    return out.clamp(0.0, 1.0).movedim(1, -1)
