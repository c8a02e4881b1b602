"""``import node_helpers`` for ComfyUI plugins: small helpers that core nodes share."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any


def conditioning_set_values(conditioning: list, values: dict | None = None, append: bool = False) -> list:
    """Copy each ``[tensor, options]`` pair with ``values`` merged into the options dict.

    With ``append`` a value is added to the list already stored under its key.
    """
    values = values or {}
    result = []
    for tensor, options in conditioning:
        options = dict(options)
        for key, value in values.items():
            if append:
                options[key] = list(options.get(key, [])) + [value]
            else:
                options[key] = value
        result.append([tensor, options])
    return result


def pillow(fn: Callable[..., Any], arg: Any) -> Any:
    """Call a PIL function, retrying once with truncated images allowed (as ComfyUI does)."""
    from PIL import ImageFile

    try:
        return fn(arg)
    except (OSError, SyntaxError):
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            return fn(arg)
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def hasher() -> Callable[[], Any]:
    """The hash constructor used for upload deduplication (sha256 by default)."""
    return hashlib.sha256
