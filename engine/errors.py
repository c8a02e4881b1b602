"""The payloads the executor reports when a node fails, is blocked or is interrupted (§2.1).

``execution_error``: ``{prompt_id, node_id, node_type, executed, exception_message,
exception_type, traceback, current_inputs, current_outputs}``; ``exception_type`` names
builtins bare and other exceptions as ``module.Name`` (``graph.DependencyCycleError`` for a
dependency cycle, ``ExecutionBlocked`` for an ``ExecutionBlocker`` with a message).
"""

from __future__ import annotations

import traceback
from typing import Any

from engine.graph import DependencyCycleError
from engine.prompt import full_type_name

SHORT_VALUE_CHARS = 200


def exception_type_name(exc: BaseException) -> str:
    if isinstance(exc, DependencyCycleError):
        return DependencyCycleError.exception_type
    return full_type_name(type(exc))


def format_value(value: Any) -> Any:
    """Scalars as they are; anything else as its ``str``, shortened (tensors print long)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else str(value)
    if len(text) > SHORT_VALUE_CHARS:
        return text[: SHORT_VALUE_CHARS - 3] + "..."
    return text


def format_inputs(inputs: dict[str, list]) -> dict[str, list]:
    """``{name: [formatted value per list element]}``, the ``current_inputs`` field."""
    return {name: [format_value(item) for item in values] for name, values in inputs.items()}


def node_error(
    prompt_id: str, node_id: str, node_type: str, executed: list[str], exc: BaseException,
    tb: Any, current_inputs: dict[str, list], current_outputs: list[str],
) -> dict:
    return {
        "prompt_id": prompt_id,
        "node_id": node_id,
        "node_type": node_type,
        "executed": executed,
        "exception_message": str(exc),
        "exception_type": exception_type_name(exc),
        "traceback": traceback.format_tb(tb) if tb is not None else [],
        "current_inputs": format_inputs(current_inputs),
        "current_outputs": current_outputs,
    }


def blocked_error(prompt_id: str, node_id: str, node_type: str, executed: list[str], message: str) -> dict:
    return {
        "prompt_id": prompt_id,
        "node_id": node_id,
        "node_type": node_type,
        "executed": executed,
        "exception_message": f"Execution Blocked: {message}",
        "exception_type": "ExecutionBlocked",
        "traceback": [],
        "current_inputs": [],
        "current_outputs": [],
    }


def interrupted(prompt_id: str, node_id: str, node_type: str, executed: list[str]) -> dict:
    return {"prompt_id": prompt_id, "node_id": node_id, "node_type": node_type, "executed": executed}
