"""Node expansion: building sub-graphs at run time, and blocking outputs (comfy-compat §6.6–6.7).

A node may return ``{"result": (...), "expand": graph}`` where ``graph`` is API-format JSON,
usually made with ``GraphBuilder``. Values in ``result`` may be links into the new graph.
The default id prefix is ``f"{root}.{call_index}.{graph_index}."``: ``root`` is the expanding
node's id and ``call_index`` the list-mapping index, both set by the executor for each call
through a context variable (so builders made inside a node get unique, deterministic ids).
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Any

from engine.prompt import is_link


class DuplicateNodeError(Exception):
    """An expansion tried to add a node id that already exists in the prompt."""


class ExecutionBlocker:
    """Returned as an output value, blocks every node that consumes it.

    With a message, the first consumer reports an ``execution_error`` (type
    ``"ExecutionBlocked"``) and execution continues; with ``None`` it is silent.
    """

    def __init__(self, message: str | None) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"ExecutionBlocker({self.message!r})"


@dataclass
class _PrefixState:
    root: str = ""
    call_index: int = 0
    graph_index: int = 0


_prefix_state: contextvars.ContextVar[_PrefixState | None] = contextvars.ContextVar("kiln_graph_prefix", default=None)


class Node:
    """A node being built; ``out(i)`` is a link ``[id, i]`` to its output ``i``."""

    def __init__(self, node_id: str, class_type: str, inputs: dict) -> None:
        self.id = node_id
        self.class_type = class_type
        self.inputs = inputs
        self.override_display_id: str | None = None

    def out(self, index: int) -> list:
        return [self.id, index]

    def set_input(self, key: str, value: Any) -> None:
        if value is None:
            self.inputs.pop(key, None)
        else:
            self.inputs[key] = value

    def get_input(self, key: str) -> Any:
        return self.inputs.get(key)

    def set_override_display_id(self, override_display_id: str) -> None:
        self.override_display_id = override_display_id

    def serialize(self) -> dict:
        serialized = {"class_type": self.class_type, "inputs": dict(self.inputs)}
        if self.override_display_id is not None:
            serialized["override_display_id"] = self.override_display_id
        return serialized


class GraphBuilder:
    """Builds an API-format sub-graph whose node ids all start with ``prefix``."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix if prefix is not None else GraphBuilder.alloc_prefix()
        self.nodes: dict[str, Node] = {}
        self._next_id = 1

    @staticmethod
    def set_default_prefix(prefix_root: str, call_index: int, graph_index: int = 0) -> None:
        """Set the default prefix parts for builders created in the current context."""
        _prefix_state.set(_PrefixState(prefix_root, call_index, graph_index))

    @staticmethod
    def alloc_prefix(root: str | None = None, call_index: int | None = None, graph_index: int | None = None) -> str:
        """Next ``f"{root}.{call_index}.{graph_index}."``; each call advances graph_index."""
        state = _prefix_state.get()
        if state is None:
            state = _PrefixState()
            _prefix_state.set(state)
        root = state.root if root is None else root
        call_index = state.call_index if call_index is None else call_index
        if graph_index is None:
            graph_index = state.graph_index
            state.graph_index += 1
        return f"{root}.{call_index}.{graph_index}."

    def node(self, class_type: str, id: str | None = None, **inputs: Any) -> Node:
        """Add a node (or return the existing one with the same id)."""
        if id is None:
            id = str(self._next_id)
            self._next_id += 1
        node_id = self.prefix + id
        existing = self.nodes.get(node_id)
        if existing is not None:
            return existing
        created = Node(node_id, class_type, inputs)
        self.nodes[node_id] = created
        return created

    def lookup_node(self, id: str) -> Node | None:
        return self.nodes.get(self.prefix + id)

    def remove_node(self, id: str) -> None:
        del self.nodes[self.prefix + id]

    def replace_node_output(self, node_id: str, index: int, new_value: Any) -> None:
        """Point every input linked to ``[node_id, index]`` at ``new_value`` (None removes it)."""
        target = [self.prefix + node_id, index]
        for node in self.nodes.values():
            for name, value in list(node.inputs.items()):
                if is_link(value) and value[0] == target[0] and value[1] == target[1]:
                    node.set_input(name, new_value)

    def finalize(self) -> dict:
        """The graph as API-format JSON, ready for ``{"expand": ...}``."""
        return {node_id: node.serialize() for node_id, node in self.nodes.items()}


class prefix_scope(contextlib.AbstractContextManager):  # noqa: N801 -- used like a function
    """Default builder prefix ``f"{prefix_root}.{call_index}.N."`` within the block (executor use)."""

    __slots__ = ("_state", "_token")

    def __init__(self, prefix_root: str, call_index: int) -> None:
        self._state = _PrefixState(prefix_root, call_index, 0)

    def __enter__(self) -> None:
        self._token = _prefix_state.set(self._state)

    def __exit__(self, *exc_info: object) -> None:
        _prefix_state.reset(self._token)


def add_graph_prefix(graph: dict, outputs: tuple | list, prefix: str) -> tuple[dict, tuple]:
    """Prefix every node id (and every link) in ``graph`` and in the ``outputs`` links."""

    def prefixed(value: Any) -> Any:
        if is_link(value):
            return [prefix + value[0], value[1]]
        return value

    new_graph = {}
    for node_id, node in graph.items():
        copied = dict(node)
        copied["inputs"] = {name: prefixed(value) for name, value in node.get("inputs", {}).items()}
        new_graph[prefix + node_id] = copied
    return new_graph, tuple(prefixed(value) for value in outputs)
