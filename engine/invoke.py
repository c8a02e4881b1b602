"""List mapping around a node call, and reading what the calls returned (comfy-compat §6.3).

Pure functions: which keyword arguments each call of a node function gets, how the calls'
results merge into one list per output slot, how their UI dicts merge, and how a node's
returns split into results, UI and expansions (§6.7).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.expansion import ExecutionBlocker
from engine.prompt import is_link

Expansion = tuple["dict | None", "tuple | None"]
"""``(sub-graph or None, result tuple or None)`` of one call."""


def find_blocker(arguments: dict, input_is_list: bool) -> ExecutionBlocker | None:
    """The first ``ExecutionBlocker`` among one call's arguments (§6.6), if any."""
    for value in arguments.values():
        if input_is_list:
            for item in value:
                if isinstance(item, ExecutionBlocker):
                    return item
        elif isinstance(value, ExecutionBlocker):
            return value
    return None


def list_calls(inputs: dict[str, list], input_is_list: bool) -> list[dict]:
    """The keyword arguments of each call (§6.3): N = longest list, shorter lists repeat their last."""
    if input_is_list:
        return [inputs]
    count = max((len(values) for values in inputs.values()), default=0)
    if count == 0:
        return [{}]
    return [
        {name: (values[index] if index < len(values) else (values[-1] if values else None)) for name, values in inputs.items()}
        for index in range(count)
    ]


def merge_outputs(results: list[tuple], output_is_list: list[bool], resolve: Callable[[Any], list] | None = None) -> list[list]:
    """Merge per-call result tuples into one list per output slot (§6.3).

    ``resolve`` turns a link left in an expansion's ``result`` into the linked output's list.
    """
    if not results:
        return []
    merged = []
    for slot in range(len(results[0])):
        values: list = []
        as_list = slot < len(output_is_list) and output_is_list[slot]
        for result in results:
            value = result[slot]
            if resolve is not None and is_link(value):
                values.extend(resolve(value))
            elif as_list and not isinstance(value, ExecutionBlocker):
                values.extend(value)
            else:
                values.append(value)
        merged.append(values)
    return merged


def merge_ui(uis: list[dict]) -> dict:
    """UI dicts of several calls merged key by key, by list concatenation (§6.3)."""
    merged: dict[str, list] = {}
    for ui in uis:
        for key, value in ui.items():
            merged.setdefault(key, [])
            if isinstance(value, (list, tuple)):
                merged[key].extend(value)
            else:
                merged[key].append(value)
    return merged


def output_is_list(node_class: type) -> list[bool]:
    """``OUTPUT_IS_LIST`` as a list, all False when the class does not declare it."""
    slots = len(getattr(node_class, "RETURN_TYPES", ()))
    return list(getattr(node_class, "OUTPUT_IS_LIST", None) or [False] * slots)


@dataclass
class SplitReturns:
    """A node's calls' returns, sorted by what they are."""

    results: list[tuple] = field(default_factory=list)
    uis: list[dict] = field(default_factory=list)
    expansions: list[Expansion] = field(default_factory=list)

    @property
    def expands(self) -> bool:
        return any(graph is not None for graph, _ in self.expansions)


def split_returns(node_class: type, returns: list) -> SplitReturns:
    """Sort each call's return (tuple, ``{"ui", "result", "expand"}`` dict or blocker), §6.3/§6.7.

    Raises ``TypeError`` for a return value that is none of those.
    """
    slots = len(getattr(node_class, "RETURN_TYPES", ()))
    split = SplitReturns()
    for value in returns:
        if isinstance(value, dict):
            if "ui" in value and value["ui"] is not None:
                split.uis.append(value["ui"])
            result = value.get("result")
            if isinstance(result, ExecutionBlocker):
                result = (result,) * slots
            if "expand" in value:
                split.expansions.append((value["expand"], tuple(result) if result is not None else None))
            elif "result" in value:
                split.results.append(tuple(result))
                split.expansions.append((None, tuple(result)))
        else:
            if isinstance(value, ExecutionBlocker):
                value = (value,) * slots
            elif value is None and slots == 0:
                value = ()  # an output node that returns nothing
            elif not isinstance(value, (tuple, list)):
                raise TypeError(
                    f"{node_class.__name__}.{node_class.FUNCTION} returned {type(value).__name__}; "
                    "expected a tuple matching RETURN_TYPES or a dict with 'ui'/'result'/'expand'"
                )
            split.results.append(tuple(value))
            split.expansions.append((None, tuple(value)))
    return split
