"""What a prompt's run needs to know about its nodes, worked out once per prompt.

``NodeFacts`` answers, for the nodes of one ``DynamicPrompt``: the class, ``INPUT_TYPES()``
and input specs (called once per class per prompt, since they may scan folders), whether
an input is lazy, whether a node is async or an output (the ready-node preference of
§6.2), hidden input values (§6.4) and a node's lineage through expansions (§6.7).
"""

from __future__ import annotations

import inspect
from typing import Any

from engine.events import Lineage
from engine.graph import DynamicPrompt
from engine.prompt import INPUT_CATEGORIES, InputSpec, input_spec, is_output_node
from engine.registry import NodeRegistry

HIDDEN_FROM_EXTRA = {
    "EXTRA_PNGINFO": "extra_pnginfo",
    "AUTH_TOKEN_COMFY_ORG": "auth_token_comfy_org",
    "API_KEY_COMFY_ORG": "api_key_comfy_org",
}
"""Hidden input kinds whose value is taken from the prompt's ``extra_data``, by key."""

PASSED_HIDDEN_KINDS = frozenset({"PROMPT", "DYNPROMPT", "UNIQUE_ID", *HIDDEN_FROM_EXTRA})
"""Hidden input kinds the executor fills in; others are left to the node's defaults."""


class NodeFacts:
    """Per-prompt, memoised lookups about the nodes of ``dynprompt``."""

    def __init__(self, registry: NodeRegistry, dynprompt: DynamicPrompt, extra_data: dict) -> None:
        self.registry = registry
        self.dynprompt = dynprompt
        self.extra_data = extra_data
        self._input_types: dict[str, dict] = {}
        self._input_specs: dict[str, dict[str, InputSpec]] = {}
        self._async_classes: dict[type, bool] = {}
        self._rank_hints: dict[str, int] = {}
        self._lineage: dict[str, Lineage] = {}

    def input_types(self, class_type: str) -> dict:
        """``INPUT_TYPES()`` once per class per prompt (it may scan folders)."""
        known = self._input_types.get(class_type)
        if known is None:
            known = self.registry.get(class_type).INPUT_TYPES()
            self._input_types[class_type] = known
        return known

    def input_specs(self, class_type: str) -> dict[str, InputSpec]:
        """Every declared input's spec (required, optional, hidden), once per class per prompt."""
        specs = self._input_specs.get(class_type)
        if specs is None:
            input_types = self.input_types(class_type)
            names = [name for category in INPUT_CATEGORIES for name in (input_types.get(category) or {})]
            specs = {name: input_spec(input_types, name) for name in names}
            self._input_specs[class_type] = specs
        return specs

    def hidden_value(self, node_id: str, kind: str) -> Any:
        if kind == "PROMPT":
            return self.dynprompt.get_original_prompt()
        if kind == "DYNPROMPT":
            return self.dynprompt
        if kind == "UNIQUE_ID":
            return node_id
        if kind in HIDDEN_FROM_EXTRA:
            return self.extra_data.get(HIDDEN_FROM_EXTRA[kind])
        return None

    def node_class(self, node_id: str) -> type | None:
        return self.registry.get(self.dynprompt.get_node(node_id).get("class_type"))

    def is_async(self, node_class: type | None) -> bool:
        """Whether the class's FUNCTION (or ``check_lazy_status``) is a coroutine function (§6.8)."""
        if node_class is None:
            return False
        known = self._async_classes.get(node_class)
        if known is None:
            function = getattr(node_class, getattr(node_class, "FUNCTION", ""), None)
            lazy_check = getattr(node_class, "check_lazy_status", None)
            known = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(lazy_check)
            self._async_classes[node_class] = known
        return known

    def rank_hint(self, node_id: str) -> int:
        """0 for output and async nodes (run first when ready), 1 for the rest."""
        hint = self._rank_hints.get(node_id)
        if hint is None:
            node_class = self.node_class(node_id)
            hint = 0 if node_class is not None and (is_output_node(node_class) or self.is_async(node_class)) else 1
            self._rank_hints[node_id] = hint
        return hint

    def is_lazy(self, node_id: str, input_name: str) -> bool:
        class_type = self.dynprompt.get_node(node_id).get("class_type")
        if class_type not in self.registry:
            return False
        try:
            spec = self.input_specs(class_type).get(input_name)
        except Exception:
            return False
        return spec is not None and spec.is_lazy

    def lineage(self, node_id: str) -> Lineage:
        """``(display_node_id, parent_node_id, real_node_id)``; fixed once a node exists."""
        known = self._lineage.get(node_id)
        if known is None:
            dynprompt = self.dynprompt
            known = (dynprompt.get_display_node_id(node_id), dynprompt.get_parent_node_id(node_id), dynprompt.get_real_node_id(node_id))
            self._lineage[node_id] = known
        return known

    def node_meta(self, node_id: str) -> dict:
        """The history entry's ``meta`` of a node (§1.4)."""
        display_id, parent_id, real_id = self.lineage(node_id)
        return {"node_id": node_id, "display_node": display_id, "parent_node": parent_id, "real_node_id": real_id}

    def owner(self, node_id: str) -> tuple[str, str] | None:
        """``(real node id, its class_type)`` for a node made by expansion, else None."""
        if node_id in self.dynprompt.original_prompt:
            return None
        real_id = self.lineage(node_id)[2]
        return real_id, self.dynprompt.get_node(real_id).get("class_type")
