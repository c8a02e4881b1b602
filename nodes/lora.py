"""LoRA nodes: LoraLoader and LoraLoaderModelOnly (comfy-compat §9).

The node returns clones of MODEL and CLIP that carry the LoRA as weight patches
(`diffusion.lora`); the shared networks change only while a patched clone runs. The parsed
file is kept on the node instance, so re-running with other strengths reads nothing again.
"""

from __future__ import annotations

from typing import Any

from nodes import runtime
from nodes.loaders import model_file

LORA_DESCRIPTION = ("LoRAs are used to modify diffusion and CLIP models, altering the way in which latents are "
                    "denoised such as applying styles. Multiple LoRA nodes can be linked together.")
STRENGTH = {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01}


class LoraLoader:
    DESCRIPTION = LORA_DESCRIPTION
    RETURN_TYPES = ("MODEL", "CLIP")
    OUTPUT_TOOLTIPS = ("The modified diffusion model.", "The modified CLIP model.")
    FUNCTION = "load_lora"
    CATEGORY = "loaders"

    def __init__(self) -> None:
        self.loaded_lora: tuple[str, Any] | None = None  # (path, parsed LoRA) of the last file read

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "model": ("MODEL", {"tooltip": "The diffusion model the LoRA will be applied to."}),
            "clip": ("CLIP", {"tooltip": "The CLIP model the LoRA will be applied to."}),
            "lora_name": (runtime.folders().list_files("loras"), {"tooltip": "The name of the LoRA."}),
            "strength_model": ("FLOAT", dict(STRENGTH, tooltip="How strongly to modify the diffusion model. "
                                                                "This value can be negative.")),
            "strength_clip": ("FLOAT", dict(STRENGTH, tooltip="How strongly to modify the CLIP model. "
                                                               "This value can be negative.")),
        }}

    def parsed_lora(self, lora_name: str) -> Any:
        """The LoRA file, parsed; read again only when another file is asked for."""
        from diffusion.loading import read_state_dict
        from diffusion.lora import parse_lora

        path = str(model_file("loras", lora_name))
        if self.loaded_lora is None or self.loaded_lora[0] != path:
            self.loaded_lora = (path, parse_lora(dict(read_state_dict(path))))
        return self.loaded_lora[1]

    def load_lora(self, model: Any, clip: Any, lora_name: str, strength_model: float, strength_clip: float) -> tuple:
        from diffusion.lora import load_lora_for_models

        if strength_model == 0 and strength_clip == 0:
            return (model, clip)
        return load_lora_for_models(model, clip, self.parsed_lora(lora_name), strength_model, strength_clip)


class LoraLoaderModelOnly(LoraLoader):
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load_lora_model_only"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "model": ("MODEL",),
            "lora_name": (runtime.folders().list_files("loras"),),
            "strength_model": ("FLOAT", dict(STRENGTH)),
        }}

    def load_lora_model_only(self, model: Any, lora_name: str, strength_model: float) -> tuple:
        return (self.load_lora(model, None, lora_name, strength_model, 0)[0],)


NODE_CLASS_MAPPINGS = {
    "LoraLoader": LoraLoader,
    "LoraLoaderModelOnly": LoraLoaderModelOnly,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "LoraLoader": "Load LoRA",
    "LoraLoaderModelOnly": "LoraLoaderModelOnly",
}
