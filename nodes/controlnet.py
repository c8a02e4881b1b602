"""ControlNet nodes: loaders and the Apply nodes (comfy-compat §9).

Applying a ControlNet stores a configured copy of the CONTROL_NET value in each
conditioning entry's `control` key, chained to the control already there (`previous`), so
several ControlNets add their residuals. The sampler's guidance runs them
(`diffusion.controlnet`).
"""

from __future__ import annotations

from typing import Any

from nodes import runtime
from nodes.loaders import device_manager, model_file

STRENGTH = {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}
PERCENT = {"min": 0.0, "max": 1.0, "step": 0.001}


class ControlNetLoader:
    RETURN_TYPES = ("CONTROL_NET",)
    FUNCTION = "load_controlnet"
    CATEGORY = "loaders"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"control_net_name": (runtime.folders().list_files("controlnet"),)}}

    def load_controlnet(self, control_net_name: str) -> tuple:
        from diffusion.controlnet import load_controlnet

        return (load_controlnet(model_file("controlnet", control_net_name), device_manager()),)


class DiffControlNetLoader:
    RETURN_TYPES = ("CONTROL_NET",)
    FUNCTION = "load_controlnet"
    CATEGORY = "loaders"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"model": ("MODEL",), "control_net_name": (runtime.folders().list_files("controlnet"),)}}

    def load_controlnet(self, model: Any, control_net_name: str) -> tuple:
        from diffusion.controlnet import load_controlnet

        return (load_controlnet(model_file("controlnet", control_net_name), device_manager(), base_model=model),)


class ControlNetApply:
    DEPRECATED = True
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "apply_controlnet"
    CATEGORY = "conditioning/controlnet"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "conditioning": ("CONDITIONING",),
            "control_net": ("CONTROL_NET",),
            "image": ("IMAGE",),
            "strength": ("FLOAT", dict(STRENGTH)),
        }}

    def apply_controlnet(self, conditioning: list, control_net: Any, image: Any, strength: float) -> tuple:
        if strength == 0:
            return (conditioning,)
        hint = image.movedim(-1, 1)
        applied = []
        for cross_attn, options in conditioning:
            options = options.copy()
            control = control_net.copy().set_cond_hint(hint, strength)
            if "control" in options:
                control.set_previous_controlnet(options["control"])
            options["control"] = control
            options["control_apply_to_uncond"] = True  # the old node has no negative input
            applied.append([cross_attn, options])
        return (applied,)


class ControlNetApplyAdvanced:
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "apply_controlnet"
    CATEGORY = "conditioning/controlnet"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "control_net": ("CONTROL_NET",),
                "image": ("IMAGE",),
                "strength": ("FLOAT", dict(STRENGTH)),
                "start_percent": ("FLOAT", dict(PERCENT, default=0.0)),
                "end_percent": ("FLOAT", dict(PERCENT, default=1.0)),
            },
            "optional": {"vae": ("VAE",)},
        }

    def apply_controlnet(self, positive: list, negative: list, control_net: Any, image: Any, strength: float,
                         start_percent: float, end_percent: float, vae: Any = None) -> tuple:
        if strength == 0:
            return (positive, negative)
        hint = image.movedim(-1, 1)
        # One control per predecessor: entries that shared a chain share the new link, so
        # cond and uncond with the same control still run in one batched model call.
        by_previous: dict[int, tuple[Any, Any]] = {}
        results = []
        for conditioning in (positive, negative):
            applied = []
            for cross_attn, options in conditioning:
                options = options.copy()
                previous = options.get("control")
                if id(previous) not in by_previous:
                    control = control_net.copy().set_cond_hint(hint, strength, (start_percent, end_percent), vae=vae)
                    control.set_previous_controlnet(previous)
                    by_previous[id(previous)] = (previous, control)
                options["control"] = by_previous[id(previous)][1]
                options["control_apply_to_uncond"] = False
                applied.append([cross_attn, options])
            results.append(applied)
        return (results[0], results[1])


NODE_CLASS_MAPPINGS = {
    "ControlNetLoader": ControlNetLoader,
    "DiffControlNetLoader": DiffControlNetLoader,
    "ControlNetApply": ControlNetApply,
    "ControlNetApplyAdvanced": ControlNetApplyAdvanced,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "ControlNetLoader": "Load ControlNet Model",
    "DiffControlNetLoader": "Load ControlNet Model (diff)",
    "ControlNetApply": "Apply ControlNet (OLD)",
    "ControlNetApplyAdvanced": "Apply ControlNet",
}
