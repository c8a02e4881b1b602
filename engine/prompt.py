"""The API ("prompt") format: links, wrapped widget values and input specs (comfy-compat §3, §7.1).

A prompt is ``{node_id: {"class_type": str, "inputs": {name: value | link}}}``. A link is a
two-element list ``[source_node_id, output_index]``; widget values that are themselves lists
arrive wrapped as ``{"__value__": [...]}`` so they cannot be mistaken for links.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INPUT_CATEGORIES = ("required", "optional", "hidden")


def is_link(value: Any) -> bool:
    """True for ``[str, int|float]``, the backend's link test (comfy-compat §3)."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], (int, float))
        and not isinstance(value[1], bool)
    )


def unwrap_value(value: Any) -> Any:
    """Return the list inside ``{"__value__": [...]}``; any other value unchanged."""
    if isinstance(value, dict) and "__value__" in value:
        return value["__value__"]
    return value


@dataclass(frozen=True)
class InputSpec:
    """One declared input: its type (a string, or a list of options for a V1 combo),
    the category it was declared in and its options dict."""

    input_type: Any
    category: str
    options: dict

    @property
    def config(self) -> list:
        """``[type, options]``, the ``input_config`` of validation errors."""
        return [self.input_type, self.options]

    @property
    def is_lazy(self) -> bool:
        return bool(self.options.get("lazy", False))

    @property
    def is_raw_link(self) -> bool:
        return bool(self.options.get("rawLink", False))


def input_spec(input_types: dict, name: str) -> InputSpec | None:
    """Find ``name`` in an ``INPUT_TYPES()`` dict, searching required, optional, hidden."""
    for category in INPUT_CATEGORIES:
        declared = input_types.get(category)
        if declared and name in declared:
            entry = declared[name]
            if category == "hidden":
                return InputSpec(entry, category, {})
            input_type = entry[0]
            options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            return InputSpec(input_type, category, options)
    return None


def declared_inputs(input_types: dict) -> list[str]:
    """Names of the required then optional inputs, in declaration order."""
    names = list(input_types.get("required") or {})
    names += [n for n in (input_types.get("optional") or {}) if n not in names]
    return names


def hidden_inputs(input_types: dict) -> dict[str, str]:
    """``{kwarg_name: "PROMPT" | "DYNPROMPT" | "EXTRA_PNGINFO" | "UNIQUE_ID" | ...}``."""
    return dict(input_types.get("hidden") or {})


def is_output_node(node_class: type) -> bool:
    """``OUTPUT_NODE is True`` exactly, as ComfyUI tests it."""
    return getattr(node_class, "OUTPUT_NODE", False) is True


def full_type_name(exception_class: type) -> str:
    """``Name`` for builtins, ``module.Name`` otherwise (the ``exception_type`` field)."""
    module = exception_class.__module__
    if module == "builtins":
        return exception_class.__qualname__
    return f"{module}.{exception_class.__qualname__}"
