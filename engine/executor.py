"""Runs a validated prompt: order, cache, list mapping, lazy inputs, expansion, events (§6).

One ``Executor`` lives as long as the worker. It owns the output cache (a ``CachePolicy``)
and the node instances (kept per ``(node_id, class_type)`` across prompts, §6.5). Each call
to ``execute`` builds a ``_PromptRun`` that holds everything that belongs to that one prompt:
the dynamic prompt, the outputs available so far, the execution list and the events.

A node function runs inside a ``NodeContext`` (engine/context.py). Sync node functions run
directly on the run's event loop thread; a node whose ``FUNCTION`` is a coroutine function
becomes an asyncio task, and other ready nodes run while it waits (§6.8).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from engine import errors
from engine.cache import CacheEntry, CachePolicy, KeepLastPrompt
from engine.context import InterruptFlag, Interrupted, NodeContext, PreviewImage, ProgressReporter, use_context
from engine.expansion import DuplicateNodeError, ExecutionBlocker, prefix_scope
from engine.graph import DependencyCycleError, DynamicPrompt, ExecutionList
from engine.prompt import INPUT_CATEGORIES, InputSpec, hidden_inputs, input_spec, is_link, is_output_node, unwrap_value
from engine.registry import NodeRegistry
from engine.signature import SignatureBuilder

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """Where a prompt's events go (bound to one prompt's client by the worker)."""

    def send(self, event: str, data: dict) -> None: ...
    def send_preview(self, preview: PreviewImage, meta: dict) -> None: ...


@dataclass
class ExecutionResult:
    """What the history entry of a prompt needs (comfy-compat §1.4): status, messages, UI, meta."""

    status_str: str
    completed: bool
    messages: list[list] = field(default_factory=list)
    outputs: dict[str, dict] = field(default_factory=dict)
    meta: dict[str, dict] = field(default_factory=dict)


class _Outcome(Enum):
    SUCCESS = "success"
    PENDING = "pending"  # waits for lazy inputs or for its expansion's nodes; runs again


@dataclass
class _Failure:
    node_id: str
    exception: BaseException
    traceback: Any
    inputs: dict[str, list]


_MISSING: Any = object()  # sentinel: a linked output that is not available (lazy, unevaluated)

_HIDDEN_FROM_EXTRA = {
    "EXTRA_PNGINFO": "extra_pnginfo",
    "AUTH_TOKEN_COMFY_ORG": "auth_token_comfy_org",
    "API_KEY_COMFY_ORG": "api_key_comfy_org",
}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _find_blocker(arguments: dict, input_is_list: bool) -> ExecutionBlocker | None:
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


class Executor:
    """Executes prompts one at a time, keeping the cache and node instances between them."""

    def __init__(self, registry: NodeRegistry, cache: CachePolicy | None = None, resources: Mapping[str, Any] | None = None) -> None:
        self.registry = registry
        self.cache = cache if cache is not None else KeepLastPrompt()
        self.resources = resources if resources is not None else {}
        if "sizeof" in self.resources and hasattr(self.cache, "sizeof"):
            self.cache.sizeof = self.resources["sizeof"]
        # (node_id, class_type) -> (instance, real node id, class_type of the real node)
        self.instances: dict[tuple[str, str], tuple[Any, str, str]] = {}

    def reset(self) -> None:
        """Drop every cached output and node instance (for /free)."""
        self.cache.clear()
        self.instances.clear()

    def execute(
        self,
        prompt: dict,
        prompt_id: str,
        extra_data: dict,
        outputs_to_execute: list[str],
        events: EventSink,
        interrupt: InterruptFlag,
    ) -> ExecutionResult:
        """Run ``outputs_to_execute`` and their ancestors; never raises for a node's failure."""
        run = _PromptRun(self, prompt, prompt_id, extra_data or {}, events, interrupt)
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(run.run(list(outputs_to_execute)))
        finally:
            loop.close()

    def instance_for(self, node_id: str, class_type: str, node_class: type, real_id: str, real_class: str) -> Any:
        """The node's instance, created on first use and reused while its node stays (§6.5)."""
        key = (node_id, class_type)
        kept = self.instances.get(key)
        if kept is None:
            kept = (node_class(), real_id, real_class)
            self.instances[key] = kept
        return kept[0]

    def forget_instances_outside(self, prompt: dict) -> None:
        """Instances survive only while their (real) node keeps its id and class."""
        for key, (_, real_id, real_class) in list(self.instances.items()):
            if prompt.get(real_id, {}).get("class_type") != real_class:
                del self.instances[key]


class _PromptRun:
    """Everything that belongs to one prompt's execution."""

    def __init__(
        self, executor: Executor, prompt: dict, prompt_id: str, extra_data: dict, events: EventSink, interrupt: InterruptFlag,
    ) -> None:
        self.executor = executor
        self.registry = executor.registry
        self.cache = executor.cache
        self.prompt_id = prompt_id
        self.extra_data = extra_data
        self.events = events
        self.interrupt = interrupt
        self.dynprompt = DynamicPrompt(prompt)
        self.outputs: dict[str, list[list]] = {}
        self.cached_ui: dict[str, dict | None] = {}
        self.ui_outputs: dict[str, dict] = {}
        self.meta: dict[str, dict] = {}
        self.executed: dict[str, None] = {}
        self.messages: list[list] = []
        self.progress: dict[str, dict] = {}
        self.looked_up: set[str] = set()
        self.pending_expansions: dict[str, list[tuple[dict | None, tuple | None]]] = {}
        self.pending_ui: dict[str, dict] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.current_node_id: str | None = None
        self._input_types: dict[str, dict] = {}
        self._async_classes: dict[type, bool] = {}
        self._rank_hints: dict[str, int] = {}
        self._lineage: dict[str, tuple[str, str | None, str]] = {}
        self._input_specs: dict[str, dict[str, InputSpec]] = {}
        self.signatures = SignatureBuilder(self.dynprompt, self.registry.get, self.input_types, self.hidden_value)
        self.execution_list = ExecutionList(self.dynprompt, self.has_output, self.rank_hint, self.is_lazy)

    # ----------------------------------------------------------------- lookups
    def input_types(self, class_type: str) -> dict:
        """``INPUT_TYPES()`` once per class per prompt (it may scan folders)."""
        known = self._input_types.get(class_type)
        if known is None:
            known = self.registry.get(class_type).INPUT_TYPES()
            self._input_types[class_type] = known
        return known

    def hidden_value(self, node_id: str, kind: str) -> Any:
        if kind == "PROMPT":
            return self.dynprompt.get_original_prompt()
        if kind == "DYNPROMPT":
            return self.dynprompt
        if kind == "UNIQUE_ID":
            return node_id
        if kind in _HIDDEN_FROM_EXTRA:
            return self.extra_data.get(_HIDDEN_FROM_EXTRA[kind])
        return None

    def node_class(self, node_id: str) -> type | None:
        return self.registry.get(self.dynprompt.get_node(node_id).get("class_type"))

    def is_async(self, node_class: type | None) -> bool:
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
        hint = self._rank_hints.get(node_id)
        if hint is None:
            node_class = self.node_class(node_id)
            hint = 0 if node_class is not None and (is_output_node(node_class) or self.is_async(node_class)) else 1
            self._rank_hints[node_id] = hint
        return hint

    def input_specs(self, class_type: str) -> dict[str, InputSpec]:
        """Every declared input's spec (required, optional, hidden), once per class per prompt."""
        specs = self._input_specs.get(class_type)
        if specs is None:
            input_types = self.input_types(class_type)
            names = [name for category in INPUT_CATEGORIES for name in (input_types.get(category) or {})]
            specs = {name: input_spec(input_types, name) for name in names}
            self._input_specs[class_type] = specs
        return specs

    def is_lazy(self, node_id: str, input_name: str) -> bool:
        class_type = self.dynprompt.get_node(node_id).get("class_type")
        if class_type not in self.registry:
            return False
        try:
            spec = self.input_specs(class_type).get(input_name)
        except Exception:
            return False
        return spec is not None and spec.is_lazy

    def has_output(self, node_id: str) -> bool:
        """Output available: computed this prompt, or found in the cache (looked up once)."""
        if node_id in self.outputs:
            return True
        if node_id in self.looked_up or not self.dynprompt.has_node(node_id):
            return False
        self.looked_up.add(node_id)
        return self.adopt_cached(node_id)

    def adopt_cached(self, node_id: str) -> bool:
        """Take the node's output from the cache if its signature is there."""
        entry = self.cache.get(self.signatures.get(node_id))
        if entry is None:
            return False
        self.outputs[node_id] = entry.outputs
        self.cached_ui[node_id] = entry.ui
        if entry.ui:
            self.ui_outputs[node_id] = entry.ui
            self.meta[node_id] = self.node_meta(node_id)
        return True

    def owner(self, node_id: str) -> tuple[str, str] | None:
        """``(real node id, its class_type)`` for a node made by expansion, else None."""
        if node_id in self.dynprompt.original_prompt:
            return None
        real_id = self.lineage(node_id)[2]
        return real_id, self.dynprompt.get_node(real_id).get("class_type")

    def node_meta(self, node_id: str) -> dict:
        display_id, parent_id, real_id = self.lineage(node_id)
        return {"node_id": node_id, "display_node": display_id, "parent_node": parent_id, "real_node_id": real_id}

    # ------------------------------------------------------------------ events
    def message(self, event: str, data: dict) -> None:
        """An event that also goes into the history entry's status messages (§1.4)."""
        data["timestamp"] = _now_ms()
        self.messages.append([event, data])
        self.events.send(event, data)

    def lineage(self, node_id: str) -> tuple[str, str | None, str]:
        """``(display_node_id, parent_node_id, real_node_id)``; fixed once a node exists."""
        known = self._lineage.get(node_id)
        if known is None:
            dynprompt = self.dynprompt
            known = (dynprompt.get_display_node_id(node_id), dynprompt.get_parent_node_id(node_id), dynprompt.get_real_node_id(node_id))
            self._lineage[node_id] = known
        return known

    def set_progress(self, node_id: str, state: str, value: float | None = None, maximum: float | None = None) -> None:
        """Update one node's entry and send every non-pending node's state (§2.1 progress_state)."""
        previous = self.progress.get(node_id)
        if maximum is None:
            maximum = previous["max"] if previous else 1
        if value is None:
            value = maximum if state == "finished" else (previous["value"] if previous else 0)
        display_id, parent_id, real_id = self.lineage(node_id)
        self.progress[node_id] = {
            "value": value, "max": maximum, "state": state, "node_id": node_id, "prompt_id": self.prompt_id,
            "display_node_id": display_id, "parent_node_id": parent_id, "real_node_id": real_id,
        }
        # A copy: sinks may serialise later, and the next update must not change this message.
        self.events.send("progress_state", {"prompt_id": self.prompt_id, "nodes": dict(self.progress)})

    def report_progress(self, node_id: str, value: int, total: int, preview: PreviewImage | None) -> None:
        display_id = self.dynprompt.get_display_node_id(node_id)
        self.events.send("progress", {"value": value, "max": total, "prompt_id": self.prompt_id, "node": display_id})
        self.set_progress(node_id, "running", value, total)
        if preview is not None:
            meta = {
                "node_id": node_id, "prompt_id": self.prompt_id, "display_node_id": display_id,
                "parent_node_id": self.dynprompt.get_parent_node_id(node_id),
                "real_node_id": self.dynprompt.get_real_node_id(node_id),
            }
            self.events.send_preview(preview, meta)

    def node_context(self, node_id: str) -> NodeContext:
        reporter = ProgressReporter(
            lambda value, total, preview: self.report_progress(node_id, value, total, preview), self.interrupt
        )
        display_id, parent_id, real_id = self.lineage(node_id)
        return NodeContext(
            prompt_id=self.prompt_id, node_id=node_id, display_node_id=display_id,
            reporter=reporter, interrupt=self.interrupt, resources=self.executor.resources,
            parent_node_id=parent_id, real_node_id=real_id,
        )

    # ------------------------------------------------------------------- prompt
    async def run(self, outputs_to_execute: list[str]) -> ExecutionResult:
        self.interrupt.clear()
        self.message("execution_start", {"prompt_id": self.prompt_id})
        prompt = self.dynprompt.get_original_prompt()
        failure: _Failure | None = None
        try:
            self.executor.forget_instances_outside(prompt)
            self.cache.begin_prompt(
                {self.signatures.get(node_id) for node_id in prompt},
                {(node_id, node.get("class_type")) for node_id, node in prompt.items() if isinstance(node, dict)},
            )
            cached = [node_id for node_id in prompt if self.has_output(node_id)]
            self.message("execution_cached", {"nodes": cached, "prompt_id": self.prompt_id})
            for output_id in outputs_to_execute:
                if self.dynprompt.has_node(output_id):
                    self.execution_list.add_node(output_id)
            failure = await self.run_list()
        except Exception as exc:  # an engine bug must not take the worker down: report it
            log.exception("executor failure outside any node")
            failure = _Failure(self.current_node_id or "", exc, sys.exc_info()[2], {})
        finally:
            for task in self.tasks.values():
                task.cancel()
            if self.tasks:
                await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            self.cache.end_prompt()

        if failure is None:
            self.message("execution_success", {"prompt_id": self.prompt_id})
            return ExecutionResult("success", True, self.messages, self.ui_outputs, self.meta)
        self.report_failure(failure)
        return ExecutionResult("error", False, self.messages, self.ui_outputs, self.meta)

    async def run_list(self) -> _Failure | None:
        """Run staged nodes until none is left; returns the failure that stopped it, if any."""
        execution_list = self.execution_list
        while not execution_list.is_empty():
            node_id = execution_list.next_ready()
            self.current_node_id = node_id
            if node_id is None:
                if not self.tasks:
                    cycle = execution_list.find_cycle()
                    return _Failure(cycle[0], DependencyCycleError(cycle), None, {})
                done, _ = await asyncio.wait(self.tasks.values(), return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    finished_id = next(key for key, value in self.tasks.items() if value is task)
                    del self.tasks[finished_id]
                    failure = self.settle(finished_id, task.result())
                    if failure is not None:
                        return failure
                continue
            if self.is_async(self.node_class(node_id)):
                task = asyncio.ensure_future(self.run_node(node_id))
                await asyncio.sleep(0)
                if not task.done():
                    self.tasks[node_id] = task
                    continue
                outcome = task.result()
            else:
                outcome = _run_without_suspending(node_id, self.run_node(node_id))
            failure = self.settle(node_id, outcome)
            if failure is not None:
                return failure
        return None

    def settle(self, node_id: str, outcome: _Outcome | _Failure) -> _Failure | None:
        if isinstance(outcome, _Failure):
            return outcome
        if outcome is _Outcome.PENDING:
            self.execution_list.requeue(node_id)
        else:
            self.execution_list.complete(node_id)
        return None

    def report_failure(self, failure: _Failure) -> None:
        node = self.dynprompt.get_node(failure.node_id) if self.dynprompt.has_node(failure.node_id) else {}
        node_type = node.get("class_type", "")
        if self.dynprompt.has_node(failure.node_id):
            self.set_progress(failure.node_id, "error")
        if isinstance(failure.exception, Interrupted):
            self.message("execution_interrupted", errors.interrupted(self.prompt_id, failure.node_id, node_type, list(self.executed)))
            return
        self.message("execution_error", errors.node_error(
            self.prompt_id, failure.node_id, node_type, list(self.executed), failure.exception,
            failure.traceback, failure.inputs, list(self.outputs),
        ))

    # --------------------------------------------------------------------- node
    async def run_node(self, node_id: str) -> _Outcome | _Failure:
        inputs: dict[str, list] = {}
        try:
            return await self._run_node(node_id, inputs)
        except Exception as exc:
            if not isinstance(exc, Interrupted):
                log.error("!!! Exception during processing of node %s !!! %s", node_id, exc, exc_info=True)
            return _Failure(node_id, exc, sys.exc_info()[2], inputs)

    async def _run_node(self, node_id: str, inputs: dict[str, list]) -> _Outcome:
        node = self.dynprompt.get_node(node_id)
        class_type = node.get("class_type")
        node_class = self.registry.get(class_type)
        if node_class is None:
            raise KeyError(f"Node {node_id}: unknown node type {class_type}")
        display_id = self.dynprompt.get_display_node_id(node_id)

        # An identical node that ran earlier in this prompt may have filled the cache since.
        if node_id in self.outputs or self.adopt_cached(node_id):
            self.events.send("executed", {
                "node": node_id, "display_node": display_id, "output": self.cached_ui.get(node_id), "prompt_id": self.prompt_id,
            })
            self.set_progress(node_id, "finished")
            return _Outcome.SUCCESS
        if node_id in self.pending_expansions:
            return self.finish_expansion(node_id, node_class)

        inputs.update(self.gather_inputs(node_id, node, node_class))
        missing = {name for name, values in inputs.items() if values is _MISSING}
        for name in missing:
            inputs[name] = [None]
        self.events.send("executing", {"node": node_id, "display_node": display_id, "prompt_id": self.prompt_id})
        self.set_progress(node_id, "running")
        real_id = self.dynprompt.get_real_node_id(node_id)
        instance = self.executor.instance_for(
            node_id, class_type, node_class, real_id, self.dynprompt.get_node(real_id).get("class_type"),
        )

        if hasattr(instance, "check_lazy_status"):
            wanted = await self.map_calls(node_id, node_class, instance.check_lazy_status, inputs, block=False)
            linked = {name for name, value in node.get("inputs", {}).items() if is_link(value)}
            needed = {
                name for answer in wanted if isinstance(answer, list) for name in answer
                if isinstance(name, str) and name in linked and (name not in inputs or name in missing)
            }
            if needed:
                for name in sorted(needed):
                    self.execution_list.make_input_strong_link(node_id, name)
                return _Outcome.PENDING

        function = getattr(instance, node_class.FUNCTION)
        returns = await self.map_calls(node_id, node_class, function, inputs, block=True)
        return self.store_returns(node_id, node_class, returns)

    def gather_inputs(self, node_id: str, node: dict, node_class: type) -> dict[str, Any]:
        """Each input as a list (§6.3): linked outputs, ``[constant]``, hidden values."""
        input_types = self.input_types(node["class_type"])
        specs = self.input_specs(node["class_type"])
        gathered: dict[str, Any] = {}
        for name, value in node.get("inputs", {}).items():
            spec = specs.get(name)
            if is_link(value) and not (spec is not None and spec.is_raw_link):
                produced = self.outputs.get(value[0])
                slot = int(value[1])
                gathered[name] = produced[slot] if produced is not None and slot < len(produced) else _MISSING
            elif spec is not None:
                gathered[name] = [unwrap_value(value)]
        if "hidden" in input_types:
            for name, kind in hidden_inputs(input_types).items():
                if kind in ("PROMPT", "DYNPROMPT", "UNIQUE_ID") or kind in _HIDDEN_FROM_EXTRA:
                    gathered[name] = [self.hidden_value(node_id, kind)]
        return gathered

    async def map_calls(self, node_id: str, node_class: type, function: Callable, inputs: dict[str, list], block: bool) -> list:
        """Call ``function`` once per list index (or once with INPUT_IS_LIST), in the node's context."""
        input_is_list = getattr(node_class, "INPUT_IS_LIST", False)
        context = self.node_context(node_id)
        results: list = []
        awaiting: list[tuple[int, asyncio.Future]] = []
        for index, arguments in enumerate(list_calls(inputs, input_is_list)):
            self.interrupt.check()
            blocker = _find_blocker(arguments, input_is_list) if block else None
            if blocker is not None:
                results.append(self.on_blocked(node_id, blocker))
                continue
            with use_context(context), prefix_scope(node_id, index):
                value = function(**arguments)
                if type(value) is not tuple and inspect.isawaitable(value):
                    awaiting.append((len(results), value))
            results.append(value)
        if len(awaiting) == 1:
            # Awaited in place (no extra task), so its body starts as soon as the node's task runs.
            position, awaitable = awaiting[0]
            with use_context(context), prefix_scope(node_id, position):
                results[position] = await awaitable
        elif awaiting:
            futures = []
            for position, awaitable in awaiting:
                with use_context(context), prefix_scope(node_id, position):
                    futures.append(asyncio.ensure_future(awaitable))
            for (position, _), value in zip(awaiting, await asyncio.gather(*futures), strict=True):
                results[position] = value
        return results

    def on_blocked(self, node_id: str, blocker: ExecutionBlocker) -> ExecutionBlocker:
        """A blocker with a message reports once (execution continues); then it goes silent."""
        if blocker.message is None:
            return blocker
        self.events.send("execution_error", errors.blocked_error(
            self.prompt_id, node_id, self.dynprompt.get_node(node_id)["class_type"], list(self.executed), blocker.message,
        ))
        return ExecutionBlocker(None)

    def store_returns(self, node_id: str, node_class: type, returns: list) -> _Outcome:
        """Split the calls' returns into results, UI and expansions (§6.3, §6.7) and store them."""
        slots = len(getattr(node_class, "RETURN_TYPES", ()))
        results: list[tuple] = []
        uis: list[dict] = []
        expansions: list[tuple[dict | None, tuple | None]] = []
        for value in returns:
            if isinstance(value, dict):
                if "ui" in value and value["ui"] is not None:
                    uis.append(value["ui"])
                result = value.get("result")
                if isinstance(result, ExecutionBlocker):
                    result = (result,) * slots
                if "expand" in value:
                    expansions.append((value["expand"], tuple(result) if result is not None else None))
                elif "result" in value:
                    results.append(tuple(result))
                    expansions.append((None, tuple(result)))
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
                results.append(tuple(value))
                expansions.append((None, tuple(value)))

        ui = merge_ui(uis) if uis else None
        if ui:
            self.record_ui(node_id, ui)
        if any(graph is not None for graph, _ in expansions):
            if ui:
                self.pending_ui[node_id] = ui
            return self.expand(node_id, expansions)
        output_is_list = list(getattr(node_class, "OUTPUT_IS_LIST", None) or [False] * slots)
        self.finish(node_id, merge_outputs(results, output_is_list), ui)
        return _Outcome.SUCCESS

    def record_ui(self, node_id: str, ui: dict) -> None:
        self.ui_outputs[node_id] = ui
        self.meta[node_id] = self.node_meta(node_id)
        self.events.send("executed", {
            "node": node_id, "display_node": self.dynprompt.get_display_node_id(node_id), "output": ui, "prompt_id": self.prompt_id,
        })

    def finish(self, node_id: str, outputs: list[list], ui: dict | None) -> None:
        self.outputs[node_id] = outputs
        self.cache.put(self.signatures.get(node_id), CacheEntry(outputs, ui or None, self.owner(node_id)))
        self.set_progress(node_id, "finished")
        self.executed[node_id] = None

    def expand(self, node_id: str, expansions: list[tuple[dict | None, tuple | None]]) -> _Outcome:
        """Add the returned sub-graphs as ephemeral nodes; resolve once their links are ready."""
        new_outputs: list[str] = []
        result_links: list[list] = []
        for graph, result in expansions:
            if graph is None:
                continue
            for new_id in graph:
                if self.dynprompt.has_node(new_id):
                    raise DuplicateNodeError(
                        f"Attempt to add duplicate node {new_id}. Ensure node ids are unique and deterministic or use GraphBuilder."
                    )
            for new_id, node_info in graph.items():
                display_id = node_info.get("override_display_id", node_id)
                self.dynprompt.add_ephemeral_node(new_id, node_info, node_id, display_id)
                new_class = self.registry.get(node_info.get("class_type"))
                if new_class is not None and is_output_node(new_class):
                    new_outputs.append(new_id)
            result_links += [value for value in (result or ()) if is_link(value)]
        self.pending_expansions[node_id] = expansions
        for output_id in new_outputs:
            self.execution_list.add_node(output_id)
        for link in result_links:
            self.execution_list.add_strong_link(link[0], node_id)
        return _Outcome.PENDING

    def finish_expansion(self, node_id: str, node_class: type) -> _Outcome:
        """Second pass of an expanded node: its result links now point at computed outputs."""
        expansions = self.pending_expansions.pop(node_id)
        results = [result for _, result in expansions if result is not None]
        slots = len(getattr(node_class, "RETURN_TYPES", ()))
        output_is_list = list(getattr(node_class, "OUTPUT_IS_LIST", None) or [False] * slots)

        def resolve(link: list) -> list:
            produced = self.outputs.get(link[0])
            if produced is None or int(link[1]) >= len(produced):
                raise KeyError(f"node {node_id}'s expansion result links to {link}, which produced no such output")
            return list(produced[int(link[1])])

        self.finish(node_id, merge_outputs(results, output_is_list, resolve), self.pending_ui.pop(node_id, None))
        return _Outcome.SUCCESS




def _run_without_suspending(node_id: str, coroutine: Any) -> Any:
    """Drive a sync node's coroutine to its result without a task (it never really awaits)."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return finished.value
    coroutine.close()
    error = RuntimeError(f"node {node_id} is not declared async (FUNCTION is no coroutine function) but awaited")
    return _Failure(node_id, error, None, {})
