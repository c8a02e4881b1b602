"""``import comfy`` for ComfyUI plugins: Kiln's shims of ``comfy.utils``, ``comfy.model_management``
and ``comfy.samplers``.

Only the modules plugins commonly reach are provided; see comfy-compat §15 item 7.
"""
