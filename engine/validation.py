"""Prompt validation, exactly as comfy-compat §1.3 and §6.1 describe it.

Validation starts from each output node and walks upstream through links, validating each
node once (memoised). Constants are coerced in place (INT/FLOAT/STRING/BOOLEAN), ranges and
combo membership are checked, links are type-checked against the producer's RETURN_TYPES,
and ``VALIDATE_INPUTS`` runs with the constant inputs. The prompt is accepted (HTTP 200)
when at least one output validates; ``node_errors`` lists only nodes with errors of their own.

The upstream walk is driven by an explicit stack of generators rather than recursion, so a
2,000-node chain validates without hitting Python's recursion limit, and a link back to a
node still being validated is reported as a dependency cycle instead of looping.
"""

from __future__ import annotations

import inspect
import logging
import sys
import traceback
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from engine.expansion import ExecutionBlocker
from engine.prompt import declared_inputs, full_type_name, input_spec, is_link, is_output_node
from engine.registry import NodeRegistry

log = logging.getLogger(__name__)

COMBO_LIST_LIMIT = 20
_COERCIONS = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}


@dataclass
class ValidationResult:
    ok: bool
    error: dict | None
    outputs: list[str]
    node_errors: dict = field(default_factory=dict)


@dataclass
class _Outcome:
    """Result of validating one node: valid, and the errors that are its own."""

    valid: bool
    errors: list[dict]


@dataclass
class _Upstream:
    """What the driver sends back to a node that asked for an upstream node."""

    outcome: _Outcome | None = None
    raised: tuple[BaseException, Any] | None = None
    cycle: list[str] | None = None


def _error(kind: str, message: str, details: str, extra_info: dict | None = None) -> dict:
    return {"type": kind, "message": message, "details": details, "extra_info": extra_info or {}}


def types_compatible(received_type: Any, input_type: Any) -> bool:
    """A link's type check: equal by the *received* type's ``!=``, else comma-split overlap.

    Using the received side's ``__ne__`` lets str subclasses such as ComfyUI's ``IO.ANY``
    match anything; a plain ``"*"`` string gets no special case (comfy-compat §6.1).
    """
    if not received_type != input_type:  # noqa: SIM202 -- the received type's __ne__ decides
        return True
    if not isinstance(received_type, str) or not isinstance(input_type, str):
        return False
    received = {part.strip() for part in received_type.split(",")}
    expected = {part.strip() for part in input_type.split(",")}
    return bool(received & expected)


def _exception_info(exc: BaseException, tb: Any) -> dict:
    return {"exception_type": full_type_name(type(exc)), "traceback": traceback.format_tb(tb)}


class _PromptValidator:
    """Validates the nodes of one prompt; ``validated`` memoises each node's outcome."""

    def __init__(self, registry: NodeRegistry, prompt: dict) -> None:
        self.registry = registry
        self.prompt = prompt
        self.validated: dict[str, _Outcome] = {}

    def validate_from(self, root: str) -> _Outcome:
        """Validate ``root`` and everything it needs; raises what validating ``root`` raises."""
        stack: list[tuple[str, Generator]] = [(root, self._node_checks(root))]
        on_stack = {root}
        reply: Any = None
        while stack:
            node_id, checks = stack[-1]
            try:
                request = checks.send(reply)
            except StopIteration as done:
                stack.pop()
                on_stack.discard(node_id)
                self.validated[node_id] = done.value
                reply = _Upstream(outcome=done.value)
                continue
            except Exception as exc:
                stack.pop()
                on_stack.discard(node_id)
                if not stack:
                    raise
                reply = _Upstream(raised=(exc, sys.exc_info()[2]))
                continue
            if request in self.validated:
                reply = _Upstream(outcome=self.validated[request])
            elif request in on_stack:
                path = [entry[0] for entry in stack]
                reply = _Upstream(cycle=path[path.index(request):] + [request])
            else:
                stack.append((request, self._node_checks(request)))
                on_stack.add(request)
                reply = None
        return self.validated[root]

    def _linked_type(self, node_id: str, link: list) -> Any:
        source_id, slot = link
        source = self.prompt.get(source_id)
        if source is None:
            raise ValueError(f"Node {node_id} links to node {source_id}, which is not in the prompt")
        return_types = getattr(self.registry.get(source["class_type"]), "RETURN_TYPES", ())
        if not 0 <= int(slot) < len(return_types):
            raise ValueError(f"Node {node_id} links to output {slot} of node {source_id}, which has no such output")
        return return_types[int(slot)]

    def _node_checks(self, node_id: str) -> Generator[str, _Upstream, _Outcome]:
        """Check one node's inputs; yields the id of each upstream node it needs validated."""
        node = self.prompt[node_id]
        inputs = node.setdefault("inputs", {})
        node_class = self.registry.get(node["class_type"])
        input_types = node_class.INPUT_TYPES()
        errors: list[dict] = []
        valid = True

        validate_args: list[str] = []
        validate_kwargs = False
        if hasattr(node_class, "VALIDATE_INPUTS"):
            spec = inspect.getfullargspec(node_class.VALIDATE_INPUTS)
            validate_args = spec.args + spec.kwonlyargs
            validate_kwargs = spec.varkw is not None
        received_types: dict[str, Any] = {}

        for name in declared_inputs(input_types):
            declared = input_spec(input_types, name)
            if name not in inputs:
                if declared.category == "required":
                    errors.append(_error("required_input_missing", "Required input is missing", name, {"input_name": name}))
                continue
            value = inputs[name]
            config = declared.config
            if isinstance(value, list):
                if not is_link(value):
                    errors.append(_error(
                        "bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]", name,
                        {"input_name": name, "input_config": config, "received_value": value},
                    ))
                    continue
                received_type = self._linked_type(node_id, value)
                received_types[name] = received_type
                if "input_types" not in validate_args and not types_compatible(received_type, declared.input_type):
                    errors.append(_error(
                        "return_type_mismatch", "Return type mismatch between linked nodes",
                        f"{name}, received_type({received_type}) mismatch input_type({declared.input_type})",
                        {"input_name": name, "input_config": config, "received_type": received_type, "linked_node": value},
                    ))
                    continue
                upstream = yield value[0]
                if upstream.cycle is not None:
                    errors.append(_error(
                        "dependency_cycle", "Dependency cycle detected", " -> ".join(upstream.cycle),
                        {"input_name": name, "input_config": config, "linked_node": value, "cycle": upstream.cycle},
                    ))
                elif upstream.raised is not None:
                    exc, tb = upstream.raised
                    valid = False
                    self.validated[value[0]] = _Outcome(False, [_error(
                        "exception_during_inner_validation", "Exception when validating inner node", str(exc),
                        {"input_name": name, "input_config": config, "exception_message": str(exc),
                         **_exception_info(exc, tb), "linked_node": value},
                    )])
                elif not upstream.outcome.valid:
                    valid = False
                continue

            if isinstance(value, dict) and "__value__" in value:
                value = value["__value__"]
                inputs[name] = value
            coerce = _COERCIONS.get(declared.input_type) if isinstance(declared.input_type, str) else None
            if coerce is not None:
                try:
                    value = coerce(value)
                except Exception as exc:
                    errors.append(_error(
                        "invalid_input_type", f"Failed to convert an input value to a {declared.input_type} value",
                        f"{name}, {value}, {exc}",
                        {"input_name": name, "input_config": config, "received_value": value, "exception_message": str(exc)},
                    ))
                    continue
                inputs[name] = value
            if name in validate_args or validate_kwargs:
                continue
            range_error = self._range_error(name, value, declared.input_type, declared.options, config)
            if range_error is not None:
                errors.append(range_error)

        if validate_args or validate_kwargs:
            errors += self._custom_validation(node_id, node_class, input_types, inputs, validate_args, validate_kwargs, received_types)

        return _Outcome(valid and not errors, errors)

    @staticmethod
    def _range_error(name: str, value: Any, input_type: Any, options: dict, config: list) -> dict | None:
        extra = {"input_name": name, "input_config": config, "received_value": value}
        if "min" in options and value < options["min"]:
            return _error("value_smaller_than_min", f"Value {value} smaller than min of {options['min']}", name, extra)
        if "max" in options and value > options["max"]:
            return _error("value_bigger_than_max", f"Value {value} bigger than max of {options['max']}", name, extra)
        if isinstance(input_type, list) and value not in input_type:
            if len(input_type) > COMBO_LIST_LIMIT:
                listing, extra["input_config"] = f"(list of length {len(input_type)})", None
            else:
                listing = str(input_type)
            return _error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {listing}", extra)
        return None

    def _custom_validation(
        self, node_id: str, node_class: type, input_types: dict, inputs: dict,
        validate_args: list[str], validate_kwargs: bool, received_types: dict,
    ) -> list[dict]:
        """Call ``VALIDATE_INPUTS`` with constants (links as None) and hidden inputs."""
        available: dict[str, Any] = {}
        for name, value in inputs.items():
            if is_link(value):
                available[name] = None
            elif input_spec(input_types, name) is not None:
                available[name] = value
        for name, kind in (input_types.get("hidden") or {}).items():
            available[name] = {"PROMPT": self.prompt, "UNIQUE_ID": node_id}.get(kind)
        arguments = {k: v for k, v in available.items() if validate_kwargs or k in validate_args}
        if "input_types" in validate_args:
            arguments["input_types"] = received_types
        verdict = node_class.VALIDATE_INPUTS(**arguments)
        if verdict is True or isinstance(verdict, ExecutionBlocker):
            return []
        details = verdict if isinstance(verdict, str) else f"VALIDATE_INPUTS returned {verdict!r}"
        return [_error("custom_validation_failed", "Custom validation failed for node", details)]


def _ancestors(prompt: dict, output_id: str) -> set[str]:
    """``output_id`` and every node it links to, directly or not."""
    seen = {output_id}
    pending = [output_id]
    while pending:
        for value in prompt[pending.pop()].get("inputs", {}).values():
            if is_link(value) and value[0] in prompt and value[0] not in seen:
                seen.add(value[0])
                pending.append(value[0])
    return seen


def validate_prompt(registry: NodeRegistry, prompt: dict, partial_targets: list[str] | None = None) -> ValidationResult:
    """Validate an API prompt (comfy-compat §6.1); coerces constant inputs in place."""
    outputs = []
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            error = _error("invalid_prompt", "Cannot execute because a node is missing the class_type property.", f"Node ID '#{node_id}'")
            return ValidationResult(False, error, [], {})
        if not isinstance(node.get("inputs", {}), dict):
            error = _error("invalid_prompt", "Cannot execute because a node's inputs are not an object.",
                           f"Node ID '#{node_id}'")
            return ValidationResult(False, error, [], {})
        class_type = node["class_type"]
        node_class = registry.get(class_type) if isinstance(class_type, str) else None
        if node_class is None:
            error = _error("invalid_prompt", f"Cannot execute because node {class_type} does not exist.", f"Node ID '#{node_id}'")
            return ValidationResult(False, error, [], {})
        if is_output_node(node_class) and (partial_targets is None or node_id in partial_targets):
            outputs.append(node_id)
    if not outputs:
        return ValidationResult(False, _error("prompt_no_outputs", "Prompt has no outputs", ""), [], {})

    validator = _PromptValidator(registry, prompt)
    good_outputs: list[str] = []
    failures: list[tuple[str, list[dict]]] = []
    for output_id in outputs:
        try:
            outcome = validator.validate_from(output_id)
        except Exception as exc:
            outcome = _Outcome(False, [_error(
                "exception_during_validation", "Exception when validating node", str(exc), _exception_info(exc, sys.exc_info()[2]),
            )])
            validator.validated[output_id] = outcome
        if outcome.valid:
            good_outputs.append(output_id)
        else:
            failures.append((output_id, outcome.errors))

    node_errors: dict[str, dict] = {}
    for output_id, _ in failures:
        log.error("Failed to validate prompt for output %s; it will be ignored", output_id)
        for node_id in _ancestors(prompt, output_id):
            outcome = validator.validated.get(node_id)
            if outcome is None or outcome.valid or not outcome.errors:
                continue
            entry = node_errors.setdefault(node_id, {
                "errors": outcome.errors, "dependent_outputs": [], "class_type": prompt[node_id]["class_type"],
            })
            entry["dependent_outputs"].append(output_id)
    for node_id, entry in node_errors.items():
        for reason in entry["errors"]:
            log.error("* %s %s: %s: %s", entry["class_type"], node_id, reason["message"], reason["details"])

    if not good_outputs:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, errors in failures for e in errors)
        error = _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details)
        return ValidationResult(False, error, [], node_errors)
    return ValidationResult(True, None, good_outputs, node_errors)
