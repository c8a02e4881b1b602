"""The node registry: which class implements each ``class_type``, and its /object_info entry.

Replaces ComfyUI's module-global ``NODE_CLASS_MAPPINGS``: one registry object per server,
handed to validation and the executor. ``node_info`` produces the V1 entry of comfy-compat
§1.7 exactly, with tuples turned into lists so the result equals its JSON round trip.

Aliases are legacy keys that workflows in the wild use for a node (``"ConditioningAverage "``
with a trailing space): ``get`` and ``in`` resolve them, so such a prompt validates and
runs, but ``object_info`` never lists them, so the editor only offers the real name. A
built-in module declares its aliases as ``NODE_CLASS_ALIASES = {alias: class_type}``, read
by ``add_module`` for built-ins; ``add_alias`` adds one directly.
"""

from __future__ import annotations

import logging
import pathlib
import sys
from collections.abc import Mapping
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
    aliases: dict[str, str] = field(default_factory=dict)  # legacy key -> class_type

    def add_module(
        self,
        mappings: dict,
        display_names: dict | None,
        python_module: str,
        builtin: bool,
        aliases: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Register a module's ``NODE_CLASS_MAPPINGS``; returns the names added.

        A plugin may not replace a built-in node or alias (refused and logged); a later
        plugin may replace an earlier plugin's node, as in ComfyUI. ``aliases`` defaults,
        for a built-in module, to its ``NODE_CLASS_ALIASES`` (looked up in ``sys.modules``
        under ``python_module``, so callers that pass only the mappings still get them).
        """
        added = []
        for name, node_class in mappings.items():
            if not builtin and (name in self.builtin_names or name in self.aliases):
                log.warning("%s: refusing to override built-in node %s", python_module, name)
                continue
            self.classes[name] = node_class
            self.python_modules[name] = python_module
            if builtin:
                self.builtin_names.add(name)
            if display_names and name in display_names:
                self.display_names[name] = display_names[name]
            added.append(name)
        if aliases is None and builtin:
            aliases = getattr(sys.modules.get(python_module), "NODE_CLASS_ALIASES", None)
        for alias, class_type in (aliases or {}).items():
            self.add_alias(alias, class_type)
        return added

    def add_alias(self, alias: str, class_type: str) -> None:
        """Let ``alias`` stand for the registered ``class_type`` in prompts (not in object_info)."""
        if class_type not in self.classes:
            raise KeyError(f"alias {alias!r} names {class_type!r}, which is not registered")
        if alias in self.classes:
            raise ValueError(f"alias {alias!r} is already a node's class_type")
        self.aliases[alias] = class_type

    def get(self, class_type: str) -> type | None:
        node_class = self.classes.get(class_type)
        if node_class is None and class_type in self.aliases:
            node_class = self.classes.get(self.aliases[class_type])
        return node_class

    def __contains__(self, class_type: object) -> bool:
        return class_type in self.classes or class_type in self.aliases

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
