"""``import comfy`` for ComfyUI plugins: Kiln's shims of ``comfy.utils`` and ``comfy.model_management``.

Only the modules plugins commonly reach are provided; see comfy-compat §15 item 7.
"""
