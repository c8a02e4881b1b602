"""Conditioning nodes: prompt encoding, CLIP skip, and editing CONDITIONING lists.

A ``CONDITIONING`` value is a list of ``[cond [1, T, D], options]`` pairs (comfy-compat §8).
Nodes never modify their inputs: every pair they touch is rebuilt with a copied options
dict, so a cached upstream value stays valid. The options keys written here are those that
ComfyUI's samplers read: ``area`` (latent units, or ``("percentage", h, w, y, x)``),
``strength``, ``set_area_to_bounds``, ``mask``, ``mask_strength``, ``start_percent``,
``end_percent``, ``pooled_output``. Specs follow ComfyUI's ``/object_info``
(comfyui-object-info.json). torch is imported inside the functions (start-up speed rule).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from nodes import MAX_RESOLUTION

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

Conditioning = list[list[Any]]


def conditioning_set_values(conditioning: Conditioning, values: dict[str, Any]) -> Conditioning:
    """A copy of ``conditioning`` with ``values`` set in every pair's options dict."""
    return [[cond, {**options, **values}] for cond, options in conditioning]


class CLIPTextEncode:
    DESCRIPTION = ("Encodes a text prompt using a CLIP model into an embedding that can be used to guide "
                   "the diffusion model towards generating specific images.")

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "text": ("STRING", {"multiline": True, "dynamicPrompts": True,
                                    "tooltip": "The text to be encoded."}),
                "clip": ("CLIP", {"tooltip": "The CLIP model used for encoding the text."}),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    OUTPUT_TOOLTIPS = ("A conditioning containing the embedded text used to guide the diffusion model.",)
    FUNCTION = "encode"
    CATEGORY = "conditioning"

    def encode(self, clip: Any, text: str) -> tuple:
        if clip is None:
            raise RuntimeError(
                "ERROR: clip input is invalid: None\n\nIf the clip is from a checkpoint loader node your "
                "checkpoint does not contain a valid clip or text encoder model."
            )
        return (clip.encode_from_tokens_scheduled(clip.tokenize(text)),)


class CLIPSetLastLayer:
    """CLIP skip: a clone of the text encoder that stops at ``stop_at_clip_layer`` (-1 = last)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "clip": ("CLIP",),
                "stop_at_clip_layer": ("INT", {"default": -1, "min": -24, "max": -1, "step": 1}),
            }
        }

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "set_last_layer"
    CATEGORY = "conditioning"

    def set_last_layer(self, clip: Any, stop_at_clip_layer: int) -> tuple:
        clip = clip.clone()
        clip.clip_layer(stop_at_clip_layer)
        return (clip,)


class ConditioningCombine:
    """Both lists' pairs; the sampler averages their predictions (the "AND" of prompts)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"conditioning_1": ("CONDITIONING",), "conditioning_2": ("CONDITIONING",)}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "combine"
    CATEGORY = "conditioning"

    def combine(self, conditioning_1: Conditioning, conditioning_2: Conditioning) -> tuple:
        return (conditioning_1 + conditioning_2,)


class ConditioningAverage:
    """``to·s + from·(1 - s)`` per pair of ``conditioning_to``, pooled outputs blended the same way.

    Only the first pair of ``conditioning_from`` is used; it is cut or zero-padded to each
    ``to`` tensor's token length.
    """

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "conditioning_to": ("CONDITIONING",),
                "conditioning_from": ("CONDITIONING",),
                "conditioning_to_strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "addWeighted"
    CATEGORY = "conditioning"

    def addWeighted(self, conditioning_to: Conditioning, conditioning_from: Conditioning,
                    conditioning_to_strength: float) -> tuple:
        import torch

        if len(conditioning_from) > 1:
            log.warning("ConditioningAverage: conditioning_from has %d entries; only the first is used",
                        len(conditioning_from))
        cond_from = conditioning_from[0][0]
        pooled_from = conditioning_from[0][1].get("pooled_output")
        strength = conditioning_to_strength
        out = []
        for cond_to, options in conditioning_to:
            pooled_to = options.get("pooled_output", pooled_from)
            matched = _fit_tokens(cond_from, cond_to.shape[1]).to(cond_to)
            blended = torch.mul(cond_to, strength) + torch.mul(matched, 1.0 - strength)
            options = dict(options)
            if pooled_from is not None and pooled_to is not None:
                options["pooled_output"] = torch.mul(pooled_to, strength) + torch.mul(pooled_from, 1.0 - strength)
            elif pooled_from is not None:
                options["pooled_output"] = pooled_from
            out.append([blended, options])
        return (out,)


def _fit_tokens(cond: torch.Tensor, length: int) -> torch.Tensor:
    """``cond [1, T, D]`` cut or zero-padded to ``[1, length, D]``."""
    import torch

    cut = cond[:, :length]
    if cut.shape[1] < length:
        padding = torch.zeros((cut.shape[0], length - cut.shape[1], cut.shape[2]), dtype=cut.dtype, device=cut.device)
        cut = torch.cat([cut, padding], dim=1)
    return cut


class ConditioningConcat:
    """Each ``conditioning_to`` tensor with the first ``conditioning_from`` tensor appended along tokens."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"conditioning_to": ("CONDITIONING",), "conditioning_from": ("CONDITIONING",)}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "concat"
    CATEGORY = "conditioning"

    def concat(self, conditioning_to: Conditioning, conditioning_from: Conditioning) -> tuple:
        import torch

        if len(conditioning_from) > 1:
            log.warning("ConditioningConcat: conditioning_from has %d entries; only the first is used",
                        len(conditioning_from))
        cond_from = conditioning_from[0][0]
        return ([[torch.cat((cond_to, cond_from.to(cond_to)), dim=1), dict(options)]
                 for cond_to, options in conditioning_to],)


class ConditioningSetArea:
    """Restrict conditioning to a pixel rectangle, stored in latent units (÷8)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "conditioning": ("CONDITIONING",),
                "width": ("INT", {"default": 64, "min": 64, "max": MAX_RESOLUTION, "step": 8}),
                "height": ("INT", {"default": 64, "min": 64, "max": MAX_RESOLUTION, "step": 8}),
                "x": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}),
                "y": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(self, conditioning: Conditioning, width: int, height: int, x: int, y: int,
               strength: float) -> tuple:
        return (conditioning_set_values(conditioning, {
            "area": (height // 8, width // 8, y // 8, x // 8),
            "strength": strength,
            "set_area_to_bounds": False,
        }),)


class ConditioningSetAreaPercentage:
    """Restrict conditioning to a rectangle given as fractions of the image."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "conditioning": ("CONDITIONING",),
                "width": ("FLOAT", {"default": 1.0, "min": 0, "max": 1.0, "step": 0.01}),
                "height": ("FLOAT", {"default": 1.0, "min": 0, "max": 1.0, "step": 0.01}),
                "x": ("FLOAT", {"default": 0, "min": 0, "max": 1.0, "step": 0.01}),
                "y": ("FLOAT", {"default": 0, "min": 0, "max": 1.0, "step": 0.01}),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(self, conditioning: Conditioning, width: float, height: float, x: float, y: float,
               strength: float) -> tuple:
        return (conditioning_set_values(conditioning, {
            "area": ("percentage", height, width, y, x),
            "strength": strength,
            "set_area_to_bounds": False,
        }),)


class ConditioningSetAreaStrength:
    """Set the weight an area or mask conditioning has when predictions are averaged."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "conditioning": ("CONDITIONING",),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(self, conditioning: Conditioning, strength: float) -> tuple:
        return (conditioning_set_values(conditioning, {"strength": strength}),)


class ConditioningSetMask:
    """Restrict conditioning to a mask; "mask bounds" also crops the latent to the mask's box."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "conditioning": ("CONDITIONING",),
                "mask": ("MASK",),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
                "set_cond_area": (["default", "mask bounds"],),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(self, conditioning: Conditioning, mask: torch.Tensor, set_cond_area: str,
               strength: float) -> tuple:
        if mask.dim() < 3:
            mask = mask.unsqueeze(0)
        return (conditioning_set_values(conditioning, {
            "mask": mask,
            "set_area_to_bounds": set_cond_area != "default",
            "mask_strength": strength,
        }),)


class ConditioningZeroOut:
    """Zeros in place of the conditioning tensors and pooled outputs (an "empty" negative for some models)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"conditioning": ("CONDITIONING",)}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "zero_out"
    CATEGORY = "advanced/conditioning"

    def zero_out(self, conditioning: Conditioning) -> tuple:
        import torch

        out = []
        for cond, options in conditioning:
            options = dict(options)
            for key in ("pooled_output", "conditioning_lyrics"):
                if options.get(key) is not None:
                    options[key] = torch.zeros_like(options[key])
            out.append([torch.zeros_like(cond), options])
        return (out,)


class ConditioningSetTimestepRange:
    """Apply conditioning only between ``start`` and ``end`` (fractions of the sampling run)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "conditioning": ("CONDITIONING",),
                "start": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001}),
                "end": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001}),
            }
        }

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "set_range"
    CATEGORY = "advanced/conditioning"

    def set_range(self, conditioning: Conditioning, start: float, end: float) -> tuple:
        return (conditioning_set_values(conditioning, {"start_percent": start, "end_percent": end}),)


NODE_CLASS_MAPPINGS = {
    "CLIPTextEncode": CLIPTextEncode,
    "CLIPSetLastLayer": CLIPSetLastLayer,
    "ConditioningCombine": ConditioningCombine,
    "ConditioningAverage": ConditioningAverage,
    "ConditioningConcat": ConditioningConcat,
    "ConditioningSetArea": ConditioningSetArea,
    "ConditioningSetAreaPercentage": ConditioningSetAreaPercentage,
    "ConditioningSetAreaStrength": ConditioningSetAreaStrength,
    "ConditioningSetMask": ConditioningSetMask,
    "ConditioningZeroOut": ConditioningZeroOut,
    "ConditioningSetTimestepRange": ConditioningSetTimestepRange,
}

# Workflows in the wild name ConditioningAverage with a trailing space (after ComfyUI's
# display-name key below); the registry resolves it but never lists it (engine/registry.py).
NODE_CLASS_ALIASES = {"ConditioningAverage ": "ConditioningAverage"}

# ComfyUI registers "Conditioning (Average)" under the key "ConditioningAverage " (trailing
# space), which matches no class, so its editor shows the class name; we show the same.
NODE_DISPLAY_NAME_MAPPINGS = {
    "CLIPTextEncode": "CLIP Text Encode (Prompt)",
    "CLIPSetLastLayer": "CLIP Set Last Layer",
    "ConditioningCombine": "Conditioning (Combine)",
    "ConditioningConcat": "Conditioning (Concat)",
    "ConditioningSetArea": "Conditioning (Set Area)",
    "ConditioningSetAreaPercentage": "Conditioning (Set Area with Percentage)",
    "ConditioningSetMask": "Conditioning (Set Mask)",
}
