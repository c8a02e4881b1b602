"""Input signatures: the cache key of a node's output (comfy-compat §6.5).

A node's signature covers its class, its ``IS_CHANGED`` value, its id when the node is
``NOT_IDEMPOTENT`` or takes a hidden ``UNIQUE_ID``, its literal inputs sorted by name, and,
for each linked input, the signature of the producing node and the output slot. Ancestors
therefore enter the key through their own signatures (a Merkle hash), visited in sorted
input-name order, so the key does not depend on node ids: two identical sub-graphs with
different ids share a cache entry. Each signature is a 16-byte BLAKE2b digest, so hashing
and comparing keys costs the same for a node deep in a chain as for a source node.

A value that cannot be keyed (an arbitrary object, a NaN, an ``IS_CHANGED`` that raised)
makes the signature a fresh random one, which never matches, so the node always re-runs.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import math
import os
from collections.abc import Callable
from typing import Any

from engine.graph import DynamicPrompt
from engine.prompt import hidden_inputs, input_spec, is_link

log = logging.getLogger(__name__)

Signature = bytes


class Unkeyable(Exception):
    """A value that cannot be part of a cache key; the node then always re-runs."""


def stable_repr(value: Any) -> str:
    """A canonical text form of a literal input, or ``Unkeyable`` for anything else."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float):
        if math.isnan(value):
            raise Unkeyable("NaN")
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(stable_repr(item) for item in value) + "]"
    if isinstance(value, dict):
        items = sorted((stable_repr(key), stable_repr(item)) for key, item in value.items())
        return "{" + ",".join(f"{key}:{item}" for key, item in items) + "}"
    raise Unkeyable(type(value).__name__)


def unique_signature() -> Signature:
    return os.urandom(16)


def _digest(text: str) -> Signature:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _accepted_kwargs(function: Callable, arguments: dict) -> dict:
    """Keep only the keyword arguments ``function`` accepts (all when it takes ``**kwargs``)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return arguments
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return arguments
    return {name: value for name, value in arguments.items() if name in parameters}


class SignatureBuilder:
    """Computes and memoises the signatures of one prompt's nodes (original and ephemeral).

    ``input_types(class_type)`` returns the class's ``INPUT_TYPES()`` for this prompt;
    ``hidden_value(node_id, kind)`` supplies hidden inputs for ``IS_CHANGED`` calls.
    """

    def __init__(
        self,
        dynprompt: DynamicPrompt,
        node_class: Callable[[str], type | None],
        input_types: Callable[[str], dict],
        hidden_value: Callable[[str, str], Any],
    ) -> None:
        self.dynprompt = dynprompt
        self.node_class = node_class
        self.input_types = input_types
        self.hidden_value = hidden_value
        self.signatures: dict[str, Signature] = {}
        self.is_changed_values: dict[str, Any] = {}
        self._facts: dict[str, tuple[type, dict, bool] | None] = {}

    def get(self, node_id: str) -> Signature:
        """The signature of ``node_id``, computing its ancestors' first (iteratively)."""
        known = self.signatures.get(node_id)
        if known is not None:
            return known
        stack = [node_id]
        visiting = set()
        while stack:
            current = stack[-1]
            if current in self.signatures:
                stack.pop()
                continue
            computed = self._compute(current)
            if isinstance(computed, bytes):
                self.signatures[current] = computed
            elif current in visiting:
                # Met again while its ancestors are still open: it sits on a cycle. It gets
                # an unmatched signature (and the executor reports the cycle).
                self.signatures[current] = unique_signature()
            else:
                visiting.add(current)
                stack.extend(computed)
                continue
            stack.pop()
            visiting.discard(current)
        return self.signatures[node_id]

    def _class_facts(self, class_type: str) -> tuple[type, dict, bool] | None:
        """``(class, INPUT_TYPES(), keyed_by_node_id)``, once per class per prompt."""
        facts = self._facts.get(class_type)
        if facts is None and class_type not in self._facts:
            node_class = self.node_class(class_type)
            if node_class is not None:
                input_types = self.input_types(class_type)
                keyed_by_id = bool(getattr(node_class, "NOT_IDEMPOTENT", False)) or (
                    "UNIQUE_ID" in hidden_inputs(input_types).values()
                )
                facts = (node_class, input_types, keyed_by_id)
            self._facts[class_type] = facts
        return facts

    def _compute(self, node_id: str) -> Signature | list[str]:
        """The node's signature, or the ids of linked nodes whose signatures are needed first."""
        node = self.dynprompt.get_node(node_id)
        class_type = node.get("class_type")
        try:
            facts = self._class_facts(class_type)
            if facts is None:
                return unique_signature()
            inputs = node.get("inputs") or {}
            parts = [repr(class_type)]
            missing = []
            for name in sorted(inputs):
                value = inputs[name]
                if is_link(value):
                    ancestor = self.signatures.get(value[0])
                    if ancestor is not None:
                        parts.append(f"{name!r}=@{ancestor.hex()}:{int(value[1])}")
                    elif self.dynprompt.has_node(value[0]):
                        missing.append(value[0])
                    else:
                        return unique_signature()
                else:
                    parts.append(f"{name!r}={stable_repr(value)}")
            if missing:
                return missing
            node_class, input_types, keyed_by_id = facts
            if hasattr(node_class, "IS_CHANGED"):
                parts.append("changed=" + stable_repr(self._is_changed(node_id, node_class, input_types)))
            if keyed_by_id:
                parts.append(f"id={node_id!r}")
        except Unkeyable:
            return unique_signature()
        except Exception:
            log.warning("cannot key node %s; it will always run", node_id, exc_info=True)
            return unique_signature()
        return _digest("|".join(parts))

    def _is_changed(self, node_id: str, node_class: type, input_types: dict) -> Any:
        """``IS_CHANGED`` with the constant inputs (links as None), once per prompt per node."""
        if node_id in self.is_changed_values:
            return self.is_changed_values[node_id]
        is_changed = getattr(node_class, "IS_CHANGED", None)
        if is_changed is None:
            value: Any = None
        else:
            arguments: dict[str, Any] = {}
            for name, item in self.dynprompt.get_node(node_id).get("inputs", {}).items():
                if is_link(item):
                    arguments[name] = None
                elif input_spec(input_types, name) is not None:
                    arguments[name] = item
            for name, kind in hidden_inputs(input_types).items():
                arguments[name] = self.hidden_value(node_id, kind)
            try:
                value = is_changed(**_accepted_kwargs(is_changed, arguments))
            except Exception:
                log.warning("IS_CHANGED of node %s raised; the node will always run", node_id, exc_info=True)
                value = float("nan")
        self.is_changed_values[node_id] = value
        return value
