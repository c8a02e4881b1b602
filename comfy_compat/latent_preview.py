"""``import latent_preview`` for ComfyUI plugins: the sampler step callback.

``prepare_callback`` returns the callback that samplers call once per step; it advances a
``comfy.utils.ProgressBar``, which reports progress (and checks interrupts) through the
running node's context. Preview images come from Kiln's own nodes (``diffusion/preview``);
here no preview is decoded, which ComfyUI also does under ``--preview-method none``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from comfy.utils import ProgressBar


def get_previewer(device: Any = None, latent_format: Any = None) -> None:
    """No latent previewer in the shim (see the module docstring)."""
    return None


def prepare_callback(model: Any, steps: int, x0_output_dict: dict | None = None) -> Callable[..., None]:
    pbar = ProgressBar(steps)

    def callback(step: int, x0: Any, x: Any, total_steps: int) -> None:
        if x0_output_dict is not None:
            x0_output_dict["x0"] = x0
        pbar.update_absolute(step + 1, total_steps, None)

    return callback
