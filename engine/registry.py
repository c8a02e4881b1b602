"""The node registry: which class implements each ``class_type``, and its /object_info entry.

Replaces ComfyUI's module-global ``NODE_CLASS_MAPPINGS``: one registry object per server,
handed to validation and the executor. ``node_info`` produces the V1 entry of comfy-compat
§1.7 exactly, with tuples turned into lists so the result equals its JSON round trip.
"""

from __future__ import annotations

import logging
import pathlib
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class PluginReport:
    """How loading one custom-node package went (shown in the start-up log)."""

    name: str
    path: pathlib.Path
    seconds: float
    error: str | None = None


def to_json_shape(value: Any) -> Any:
    """Deep copy with tuples turned into lists (what ``json.dumps`` would emit)."""
    if isinstance(value, dict):
        return {key: to_json_shape(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_shape(item) for item in value]
    return value


@dataclass
class NodeRegistry:
    """Node classes by ``class_type``, with display names and the module each came from."""

    classes: dict[str, type] = field(default_factory=dict)
    display_names: dict[str, str] = field(default_factory=dict)
    python_modules: dict[str, str] = field(default_factory=dict)
    web_directories: dict[str, pathlib.Path] = field(default_factory=dict)
    plugin_reports: list[PluginReport] = field(default_factory=list)
    builtin_names: set[str] = field(default_factory=set)

    def add_module(
        self,
        mappings: dict,
        display_names: dict | None,
        python_module: str,
        builtin: bool,
    ) -> list[str]:
        """Register a module's ``NODE_CLASS_MAPPINGS``; returns the names added.

        A plugin may not replace a built-in node (refused and logged); a later plugin
        may replace an earlier plugin's node, as in ComfyUI.
        """
        added = []
        for name, node_class in mappings.items():
            if not builtin and name in self.builtin_names:
                log.warning("%s: refusing to override built-in node %s", python_module, name)
                continue
            self.classes[name] = node_class
            self.python_modules[name] = python_module
            if builtin:
                self.builtin_names.add(name)
            if display_names and name in display_names:
                self.display_names[name] = display_names[name]
            added.append(name)
        return added

    def get(self, class_type: str) -> type | None:
        return self.classes.get(class_type)

    def __contains__(self, class_type: object) -> bool:
        return class_type in self.classes

    def node_info(self, class_type: str) -> dict:
        """One /object_info entry (comfy-compat §1.7); raises what ``INPUT_TYPES`` raises."""
        node_class = self.classes[class_type]
        input_types = node_class.INPUT_TYPES()
        return_types = list(getattr(node_class, "RETURN_TYPES", ()))
        output_is_list = getattr(node_class, "OUTPUT_IS_LIST", None)
        return_names = getattr(node_class, "RETURN_NAMES", None)
        info = {
            "input": to_json_shape(input_types),
            "input_order": {category: list(inputs) for category, inputs in input_types.items()},
            "output": to_json_shape(return_types),
            "output_is_list": list(output_is_list) if output_is_list is not None else [False] * len(return_types),
            "output_name": to_json_shape(return_names if return_names is not None else return_types),
            "name": class_type,
            "display_name": self.display_names.get(class_type, class_type),
            "description": getattr(node_class, "DESCRIPTION", ""),
            "python_module": self.python_modules.get(
                class_type, getattr(node_class, "RELATIVE_PYTHON_MODULE", "nodes")
            ),
            "category": getattr(node_class, "CATEGORY", "sd"),
            "output_node": getattr(node_class, "OUTPUT_NODE", False) is True,
        }
        if hasattr(node_class, "OUTPUT_TOOLTIPS"):
            info["output_tooltips"] = to_json_shape(node_class.OUTPUT_TOOLTIPS)
        if getattr(node_class, "DEPRECATED", False):
            info["deprecated"] = True
        if getattr(node_class, "EXPERIMENTAL", False):
            info["experimental"] = True
        if hasattr(node_class, "API_NODE"):
            info["api_node"] = node_class.API_NODE
        return info

    def object_info(self) -> dict:
        """Every node's entry; a class whose ``INPUT_TYPES`` raises is logged and left out."""
        entries = {}
        for class_type in self.classes:
            try:
                entries[class_type] = self.node_info(class_type)
            except Exception:
                log.exception("object_info: leaving out %s, its INPUT_TYPES raised", class_type)
        return entries
