"""Primitive nodes: a widget whose value is the node's output (Int, Float, String, Boolean).

Specs follow ComfyUI's ``comfy_extras/nodes_primitive.py`` entries in
comfyui-object-info.json: the numeric limits are ``±sys.maxsize`` and there is no default,
so the editor's own widget default applies.
"""

from __future__ import annotations

import sys

PRIMITIVE_CATEGORY = "utils/primitive"


class PrimitiveString:
    """A single-line string."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"value": ("STRING", {"multiline": False})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "execute"
    CATEGORY = PRIMITIVE_CATEGORY

    def execute(self, value: str) -> tuple:
        return (value,)


class PrimitiveStringMultiline(PrimitiveString):
    """A string edited in a multi-line text box."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"value": ("STRING", {"multiline": True})}}


class PrimitiveInt:
    """An integer; the editor adds the control_after_generate widget (fixed/increment/...)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        options = {"min": -sys.maxsize, "max": sys.maxsize, "control_after_generate": True}
        return {"required": {"value": ("INT", options)}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "execute"
    CATEGORY = PRIMITIVE_CATEGORY

    def execute(self, value: int) -> tuple:
        return (value,)


class PrimitiveFloat:
    """A floating-point number."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"value": ("FLOAT", {"min": -sys.maxsize, "max": sys.maxsize})}}

    RETURN_TYPES = ("FLOAT",)
    FUNCTION = "execute"
    CATEGORY = PRIMITIVE_CATEGORY

    def execute(self, value: float) -> tuple:
        return (value,)


class PrimitiveBoolean:
    """A true/false toggle."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"value": ("BOOLEAN", {})}}

    RETURN_TYPES = ("BOOLEAN",)
    FUNCTION = "execute"
    CATEGORY = PRIMITIVE_CATEGORY

    def execute(self, value: bool) -> tuple:
        return (value,)


NODE_CLASS_MAPPINGS = {
    "PrimitiveString": PrimitiveString,
    "PrimitiveStringMultiline": PrimitiveStringMultiline,
    "PrimitiveInt": PrimitiveInt,
    "PrimitiveFloat": PrimitiveFloat,
    "PrimitiveBoolean": PrimitiveBoolean,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "PrimitiveString": "String",
    "PrimitiveStringMultiline": "String (Multiline)",
    "PrimitiveInt": "Int",
    "PrimitiveFloat": "Float",
    "PrimitiveBoolean": "Boolean",
}
