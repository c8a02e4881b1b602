"""Loader nodes: checkpoints, VAEs, diffusion models and text encoders (comfy-compat §9, §11).

Specs follow ComfyUI's `/object_info` (comfyui-object-info.json). The work happens in
`diffusion.loading`, imported inside the functions (start-up speed rule).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nodes import runtime

WEIGHT_DTYPES = ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]
CLIP_TYPES = ["stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv", "pixart", "cosmos",
              "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2", "qwen_image", "hunyuan_image"]
PIXEL_SPACE = "pixel_space"


def device_manager() -> Any:
    """The server's DeviceManager; a node run outside the server gets a fresh one."""
    try:
        return runtime.devices()
    except runtime.NoNodeContext:
        from diffusion.devices import DeviceManager

        return DeviceManager()


def model_file(folder_key: str, name: str) -> Path:
    """The file `name` in a model folder; a clear error when it is not there."""
    path = runtime.folders().full_path(folder_key, name)
    if path is None:
        raise FileNotFoundError(f"{name!r} was not found in the {folder_key} folders")
    return path


def embedding_dirs() -> list[Path]:
    folders = runtime.folders()
    return folders.paths("embeddings") if "embeddings" in folders else []


class CheckpointLoaderSimple:
    DESCRIPTION = "Loads a diffusion model checkpoint, diffusion models are used to denoise latents."
    RETURN_TYPES = ("MODEL", "CLIP", "VAE")
    OUTPUT_TOOLTIPS = ("The model used for denoising latents.",
                       "The CLIP model used for encoding text prompts.",
                       "The VAE model used for encoding and decoding images to and from latent space.")
    FUNCTION = "load_checkpoint"
    CATEGORY = "loaders"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "ckpt_name": (runtime.folders().list_files("checkpoints"),
                          {"tooltip": "The name of the checkpoint (model) to load."}),
        }}

    def load_checkpoint(self, ckpt_name: str) -> tuple:
        from diffusion.loading import load_checkpoint

        return load_checkpoint(model_file("checkpoints", ckpt_name), device_manager(), embedding_dirs())


class VAELoader:
    RETURN_TYPES = ("VAE",)
    FUNCTION = "load_vae"
    CATEGORY = "loaders"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        # TAESD approximations are not offered: Kiln does not load them as a VAE yet.
        return {"required": {"vae_name": (runtime.folders().list_files("vae") + [PIXEL_SPACE],)}}

    def load_vae(self, vae_name: str) -> tuple:
        if vae_name == PIXEL_SPACE:
            from diffusion.vae_model import PixelSpaceVAE

            return (PixelSpaceVAE(device_manager()),)
        from diffusion.loading import load_vae

        return (load_vae(model_file("vae", vae_name), device_manager()),)


class UNETLoader:
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load_unet"
    CATEGORY = "advanced/loaders"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {
            "unet_name": (runtime.folders().list_files("diffusion_models"),),
            "weight_dtype": (WEIGHT_DTYPES,),
        }}

    def load_unet(self, unet_name: str, weight_dtype: str) -> tuple:
        import torch

        from diffusion.loading import load_unet

        storage = {"fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e4m3fn_fast": torch.float8_e4m3fn,
                   "fp8_e5m2": torch.float8_e5m2}.get(weight_dtype)
        return (load_unet(model_file("diffusion_models", unet_name), device_manager(), storage),)


class CLIPLoader:
    DESCRIPTION = ("[Recipes]\n\nstable_diffusion: clip-l\nstable_cascade: clip-g\nsd3: t5 xxl/ clip-g / clip-l\n"
                   "stable_audio: t5 base\nmochi: t5 xxl\ncosmos: old t5 xxl\nlumina2: gemma 2 2B\nwan: umt5 xxl\n"
                   " hidream: llama-3.1 (Recommend) or t5\nomnigen2: qwen vl 2.5 3B")
    RETURN_TYPES = ("CLIP",)
    FUNCTION = "load_clip"
    CATEGORY = "advanced/loaders"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "clip_name": (runtime.folders().list_files("text_encoders"),),
                "type": (CLIP_TYPES,),
            },
            "optional": {"device": (["default", "cpu"], {"advanced": True})},
        }

    def load_clip(self, clip_name: str, type: str = "stable_diffusion", device: str = "default") -> tuple:
        from diffusion.loading import load_text_encoder

        if type != "stable_diffusion":
            raise ValueError(f"CLIPLoader: type {type!r} is not supported by Kiln yet (only stable_diffusion)")
        if device == "cpu":
            from diffusion.devices import DeviceManager

            devices = DeviceManager(cpu=True)
        else:
            devices = device_manager()
        return (load_text_encoder(model_file("text_encoders", clip_name), devices, embedding_dirs()),)


NODE_CLASS_MAPPINGS = {
    "CheckpointLoaderSimple": CheckpointLoaderSimple,
    "VAELoader": VAELoader,
    "UNETLoader": UNETLoader,
    "CLIPLoader": CLIPLoader,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "CheckpointLoaderSimple": "Load Checkpoint",
    "VAELoader": "Load VAE",
    "UNETLoader": "Load Diffusion Model",
    "CLIPLoader": "Load CLIP",
}
