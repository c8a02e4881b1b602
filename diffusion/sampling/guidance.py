"""Classifier-free guidance over CONDITIONING lists (Ho & Salimans 2022), with areas, masks, ranges, control.

A CONDITIONING entry is `[cross_attn [1, T, D], options]`. Before sampling each entry is resolved
against the latent's shape (areas in latent units, masks resized to the latent, start/end percents
turned into sigmas). At each step every entry whose sigma range covers the current sigma runs on
its crop of x; compatible entries of cond and uncond share ONE model call, split only when the
model's memory estimate says the batch does not fit. Each prediction is
accumulated with weight `mask · strength` (hard area edges feathered over 8 latent pixels) and
divided by the summed weights, as ComfyUI does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from diffusion.inpaint import inpaint_concat

FEATHER_PIXELS = 8
EMPTY_WEIGHT = 1e-37  # the weight of latent pixels no entry covers, so the division stays finite
MAX_TOKEN_REPEAT = 4  # cross-attention of different lengths batch together up to this repeat factor


@dataclass
class ResolvedCond:
    """One conditioning entry made concrete for a latent of a given shape."""

    cross_attn: torch.Tensor
    options: dict
    area: tuple[int, int, int, int] | None = None  # (h, w, y, x) in latent pixels
    strength: float = 1.0
    mask: torch.Tensor | None = None  # [B or 1, h, w] at latent size, already times mask_strength
    sigma_start: float | None = None  # applies while sigma <= sigma_start
    sigma_end: float | None = None  # ... and sigma >= sigma_end
    control: Any = None
    concat: torch.Tensor | None = None  # extra UNet input channels (inpainting models), [B, c, H, W]


@dataclass
class _Chunk:
    """One entry's model input for the current step."""

    slot: int  # 0 = cond, 1 = uncond
    cond: ResolvedCond
    x: torch.Tensor
    weight: torch.Tensor
    area: tuple[int, int, int, int] = field(default=(0, 0, 0, 0))


def _mask_bounds(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """(h, w, y, x) of the smallest box holding every non-zero pixel of a [B, H, W] mask."""
    nonzero = (mask > 0).any(dim=0)
    rows = torch.nonzero(nonzero.any(dim=1)).flatten()
    cols = torch.nonzero(nonzero.any(dim=0)).flatten()
    if len(rows) == 0:
        return (mask.shape[1], mask.shape[2], 0, 0)
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    return (y1 - y0 + 1, x1 - x0 + 1, y0, x0)


def resolve_conditioning(conditioning: Sequence, latent_shape: Sequence[int], model_sampling,
                         device: torch.device | str = "cpu") -> list[ResolvedCond]:
    """Turn a CONDITIONING list into ResolvedConds for a [B, C, H, W] latent (areas, masks, sigma ranges)."""
    height, width = int(latent_shape[-2]), int(latent_shape[-1])
    resolved = []
    for cross_attn, options in conditioning:
        options = dict(options)
        entry = ResolvedCond(cross_attn=cross_attn.to(device), options=options,
                             strength=float(options.get("strength", 1.0)), control=options.get("control"))
        area = options.get("area")
        if area is not None:
            if area[0] == "percentage":
                _, h, w, y, x = area
                area = (max(1, round(h * height)), max(1, round(w * width)), round(y * height), round(x * width))
            entry.area = tuple(int(v) for v in area)
        mask = options.get("mask")
        if mask is not None:
            mask = mask.to(device=device, dtype=torch.float32)
            if mask.ndim == 2:
                mask = mask.unsqueeze(0)
            if tuple(mask.shape[1:]) != (height, width):
                mask = F.interpolate(mask.unsqueeze(1), size=(height, width), mode="bilinear", align_corners=False).squeeze(1)
            if options.get("set_area_to_bounds", False):
                entry.area = _mask_bounds(mask)
            entry.mask = mask * float(options.get("mask_strength", 1.0))
        if "start_percent" in options:
            entry.sigma_start = model_sampling.percent_to_sigma(float(options["start_percent"]))
        if "end_percent" in options:
            entry.sigma_end = model_sampling.percent_to_sigma(float(options["end_percent"]))
        resolved.append(entry)
    return resolved


def _feather(weight: torch.Tensor, area: tuple[int, int, int, int], full: tuple[int, int]) -> torch.Tensor:
    """Ramp the weight linearly over FEATHER_PIXELS at each area edge that is inside the latent."""
    h, w, y, x = area
    for dim, (start, size, limit) in enumerate(((y, h, full[0]), (x, w, full[1]))):
        axis = dim + 2
        for t in range(FEATHER_PIXELS):
            ramp = (t + 1) / FEATHER_PIXELS
            if start != 0 and t < weight.shape[axis]:
                weight.narrow(axis, t, 1).mul_(ramp)
            if start + size < limit and 0 <= size - 1 - t < weight.shape[axis]:
                weight.narrow(axis, size - 1 - t, 1).mul_(ramp)
    return weight


def _chunk_for(slot: int, cond: ResolvedCond, x: torch.Tensor, sigma: float) -> _Chunk | None:
    """The entry's crop of x and its weight, or None when sigma is outside the entry's range."""
    if cond.sigma_start is not None and sigma > cond.sigma_start:
        return None
    if cond.sigma_end is not None and sigma < cond.sigma_end:
        return None
    full = (x.shape[2], x.shape[3])
    area = cond.area if cond.area is not None else (full[0], full[1], 0, 0)
    h, w, y, x0 = area
    crop = x[:, :, y:y + h, x0:x0 + w]
    if cond.mask is not None:
        mask = cond.mask[: crop.shape[0], y:y + h, x0:x0 + w].to(crop)
        weight = mask.unsqueeze(1).repeat(crop.shape[0] // mask.shape[0], crop.shape[1], 1, 1)
    else:
        weight = torch.ones_like(crop)
    weight = weight * cond.strength
    if cond.mask is None and cond.area is not None:
        weight = _feather(weight, (crop.shape[2], crop.shape[3], y, x0), full)
    return _Chunk(slot, cond, crop, weight, (crop.shape[2], crop.shape[3], y, x0))


def _tokens_concatable(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape[0] != b.shape[0] or a.shape[2:] != b.shape[2:]:
        return False
    lcm = math.lcm(a.shape[1], b.shape[1])
    return lcm // min(a.shape[1], b.shape[1]) <= MAX_TOKEN_REPEAT


def _batchable(first: _Chunk, other: _Chunk) -> bool:
    return (first.x.shape == other.x.shape and first.cond.control is other.cond.control
            and (first.cond.concat is None) == (other.cond.concat is None)
            and _tokens_concatable(first.cond.cross_attn, other.cond.cross_attn)
            and ("pooled_output" in first.cond.options) == ("pooled_output" in other.cond.options))


def _concat_tokens(tensors: list[torch.Tensor], batch: int) -> torch.Tensor:
    length = math.lcm(*[t.shape[1] for t in tensors])
    parts = [t.repeat(batch // t.shape[0] if batch % t.shape[0] == 0 else 1, length // t.shape[1], 1) for t in tensors]
    return torch.cat(parts)


def calc_cond_batch(model, cond_lists: Sequence[list[ResolvedCond] | None], x: torch.Tensor, sigma: torch.Tensor,
                    transformer_options: dict | None = None) -> list[torch.Tensor]:
    """Each list's weighted-average x0 prediction; compatible entries across lists share one model call."""
    outputs = [torch.zeros_like(x) for _ in cond_lists]
    weights = [torch.full_like(x, EMPTY_WEIGHT) for _ in cond_lists]
    sigma_value = float(sigma.flatten()[0])
    pending = [chunk for slot, conds in enumerate(cond_lists) if conds is not None
               for cond in conds if (chunk := _chunk_for(slot, cond, x, sigma_value)) is not None]
    while pending:
        group = [chunk for chunk in pending if _batchable(pending[0], chunk)]
        group = group[:_chunks_that_fit(model, group[0].x.shape, len(group))]
        pending = [chunk for chunk in pending if all(chunk is not member for member in group)]
        batch = x.shape[0]
        model_x = torch.cat([chunk.x for chunk in group])
        model_sigma = torch.cat([sigma] * len(group))
        context = _concat_tokens([chunk.cond.cross_attn for chunk in group], batch)
        y = _pooled(model, group, batch)
        options = dict(transformer_options or {})
        options["cond_or_uncond"] = [chunk.slot for chunk in group]
        options["sigmas"] = sigma
        control = None
        if group[0].cond.control is not None:
            control = group[0].cond.control.get_control(model_x, model_sigma, {"c_crossattn": context, "y": y}, len(group))
        extra = {}
        if group[0].cond.concat is not None:
            extra["concat"] = torch.cat([_crop(chunk.cond.concat, chunk.area) for chunk in group])
        prediction = model.apply_model(model_x, model_sigma, context, y=y, control=control, transformer_options=options,
                                       **extra)
        for chunk, part in zip(group, prediction.chunk(len(group))):
            h, w, top, left = chunk.area
            outputs[chunk.slot][:, :, top:top + h, left:left + w] += part * chunk.weight
            weights[chunk.slot][:, :, top:top + h, left:left + w] += chunk.weight
    return [output / weight for output, weight in zip(outputs, weights)]


def _chunks_that_fit(model, chunk_shape: torch.Size, count: int) -> int:
    """How many chunks one model call may take: all, unless the model's memory estimate (x1.5) says fewer."""
    memory_required = getattr(model, "memory_required", None)
    free_memory = getattr(getattr(model, "devices", None), "free_memory", None)
    if memory_required is None or free_memory is None or count == 1:
        return count
    available = free_memory()
    for n in range(count, 1, -1):
        if memory_required((chunk_shape[0] * n, *chunk_shape[1:])) * 1.5 < available:
            return n
    return 1


def _crop(tensor: torch.Tensor, area: tuple[int, int, int, int]) -> torch.Tensor:
    h, w, top, left = area
    return tensor[:, :, top:top + h, left:left + w]


def _pooled(model, group: list[_Chunk], batch: int) -> torch.Tensor | None:
    """The class/ADM vector `y` for models that take one (model.encode_adm), else None."""
    encode_adm = getattr(model, "encode_adm", None)
    if encode_adm is None:
        return None
    parts = [encode_adm(chunk.cond.options, batch) for chunk in group]
    return None if any(p is None for p in parts) else torch.cat(parts)


class CFGGuider:
    """A GUIDER: the denoiser D(x, σ) = uncond + (cond - uncond)·cfg over a MODEL and its conditionings."""

    def __init__(self, model, positive: list | None = None, negative: list | None = None, cfg: float = 1.0) -> None:
        self.model = model
        self.conds: dict[str, list] = {}
        if positive is not None:
            self.conds["positive"] = positive
        if negative is not None:
            self.conds["negative"] = negative
        self.cfg = float(cfg)
        self.resolved: dict[str, list[ResolvedCond]] = {}

    @property
    def model_patcher(self):
        """ComfyUI's name for the guider's MODEL, which plugins read."""
        return self.model

    def sample(self, noise: torch.Tensor, latent: torch.Tensor, sampler, sigmas: torch.Tensor,
               denoise_mask: torch.Tensor | None = None, callback=None, disable_pbar: bool = False,
               seed: int | None = None) -> torch.Tensor:
        """Sample a latent (VAE space) with this guider, as ComfyUI's `CFGGuider.sample` does."""
        from .pipeline import sample_with_guider  # the pipeline builds on guidance, not the other way

        return sample_with_guider(self, noise, latent, sampler, sigmas, denoise_mask, callback, disable_pbar, seed)

    def set_conds(self, positive: list, negative: list | None = None) -> None:
        self.conds = {"positive": positive} if negative is None else {"positive": positive, "negative": negative}

    def set_cfg(self, cfg: float) -> None:
        self.cfg = float(cfg)

    def prepare(self, latent_shape: Sequence[int], device: torch.device | str,
                latent_image: torch.Tensor | None = None, denoise_mask: torch.Tensor | None = None) -> None:
        """Resolve areas, masks and sigma ranges for this latent shape (once per sampling run).

        Also readies ControlNets (`pre_run`; `control_apply_to_uncond` shares a positive
        entry's control with uncond entries that have none) and the extra input channels of
        inpainting models (`diffusion.inpaint`), from the latent being sampled (model space)
        and its noise mask.
        """
        ms = self.model.model_sampling
        self.resolved = {name: resolve_conditioning(c, latent_shape, ms, device) for name, c in self.conds.items()}
        shared = next((c.control for c in self.resolved.get("positive", [])
                       if c.control is not None and c.options.get("control_apply_to_uncond", False)), None)
        for entry in self.resolved.get("negative", []):
            if entry.control is None and shared is not None:
                entry.control = shared
        controls = {id(c.control): c.control for conds in self.resolved.values() for c in conds if c.control is not None}
        for control in controls.values():
            if hasattr(control, "pre_run"):
                control.pre_run(self.model)
        for conds in self.resolved.values():
            for entry in conds:
                entry.concat = inpaint_concat(self.model, entry.options, latent_shape, device, latent_image, denoise_mask)

    def cleanup(self) -> None:
        """Let ControlNets drop what they computed for this run (their resized hints), as after a ComfyUI run."""
        controls = {id(c.control): c.control for conds in self.resolved.values() for c in conds if c.control is not None}
        for control in controls.values():
            if hasattr(control, "cleanup"):
                control.cleanup()

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, model_options: dict | None = None,
                 **extra_args) -> torch.Tensor:
        """D(x, σ). `model_options` from a sampler (e.g. a CFG++ post-CFG hook) extend the model's own."""
        model_options = merge_model_options(getattr(self.model, "model_options", None) or {}, model_options)
        positive = self.resolved.get("positive", [])
        negative = self.resolved.get("negative")
        skip_uncond = negative is None or (math.isclose(self.cfg, 1.0)
                                           and not model_options.get("disable_cfg1_optimization", False))
        cond, uncond = calc_cond_batch(self.model, [positive, None if skip_uncond else negative], x, sigma,
                                       model_options.get("transformer_options"))
        return apply_cfg(self.model, model_options, x, sigma, cond, uncond, self.cfg)


def merge_model_options(base: dict, extra: dict | None) -> dict:
    """The model's options plus a sampler's; hook lists are concatenated, model hooks first."""
    if not extra:
        return base
    merged = dict(base)
    for key, value in extra.items():
        if key == "sampler_post_cfg_function":
            merged[key] = list(base.get(key, [])) + list(value)
        else:
            merged[key] = value
    return merged


def apply_cfg(model, model_options: dict, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor,
              uncond: torch.Tensor, cfg: float) -> torch.Tensor:
    """uncond + (cond - uncond)·cfg, or the model's `sampler_cfg_function`, then its post-CFG hooks."""
    cfg_function = model_options.get("sampler_cfg_function")
    if cfg_function is not None:
        args = {"cond": x - cond, "uncond": x - uncond, "cond_scale": cfg, "timestep": sigma, "input": x,
                "sigma": sigma, "cond_denoised": cond, "uncond_denoised": uncond, "model": model,
                "model_options": model_options}
        result = x - cfg_function(args)  # the hook works in eps-like units, as ComfyUI's does
    else:
        result = uncond + (cond - uncond) * cfg
    for post_function in model_options.get("sampler_post_cfg_function", []):
        result = post_function({"denoised": result, "cond": cond, "uncond": uncond, "cond_scale": cfg,
                                "model": model, "uncond_denoised": uncond, "cond_denoised": cond,
                                "sigma": sigma, "model_options": model_options, "input": x})
    return result


class BasicGuider(CFGGuider):
    """A GUIDER with one conditioning and no guidance (cfg 1)."""

    def __init__(self, model, conditioning: list | None = None) -> None:
        super().__init__(model, conditioning, None, 1.0)
