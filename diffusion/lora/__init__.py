"""LoRA and LyCORIS adapters: reading the files, mapping their names, patching shared weights."""

from diffusion.lora.apply import load_lora_for_models
from diffusion.lora.formats import ParsedLora, parse_lora
from diffusion.lora.patching import WeightPatch, apply_weight_patches

__all__ = ["ParsedLora", "WeightPatch", "apply_weight_patches", "load_lora_for_models", "parse_lora"]
