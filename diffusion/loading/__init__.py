"""Reading weight files, detecting what they hold, and building Kiln's model values from them."""

from diffusion.loading.errors import CheckpointError, UnsafeCheckpoint, UnsupportedModel
from diffusion.loading.files import read_state_dict

__all__ = [
    "CheckpointError", "UnsafeCheckpoint", "UnsupportedModel", "load_checkpoint", "load_text_encoder",
    "load_unet", "load_vae", "read_state_dict",
]


def __getattr__(name: str):
    # checkpoint.py pulls in every model class; import it only when a loader is asked for.
    if name in ("load_checkpoint", "load_unet", "load_vae", "load_text_encoder"):
        from diffusion.loading import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(name)
