"""``comfy.samplers`` for ComfyUI plugins: the sampler and scheduler names (comfy-compat §10.1).

Plugins put ``comfy.samplers.KSampler.SAMPLERS`` and ``.SCHEDULERS`` in their
``INPUT_TYPES`` so their combos match the built-in KSampler's. The names come from
``diffusion.sampling.names``, which is torch-free, so importing this stays cheap. The
sampler list is the one Kiln's KSampler offers (ComfyUI's order, implemented samplers).
"""

from __future__ import annotations

from diffusion.sampling.names import available_sampler_names, scheduler_names

SAMPLER_NAMES: list[str] = available_sampler_names()
SCHEDULER_NAMES: list[str] = scheduler_names()


class KSampler:
    """Only the class attributes plugins read; sampling itself is the built-in KSampler node."""

    SAMPLERS: list[str] = SAMPLER_NAMES
    SCHEDULERS: list[str] = SCHEDULER_NAMES
