"""One prompt's execution: staging, running nodes, lazy inputs, expansion, failure (§6.2-§6.9).

``PromptRun`` holds everything that belongs to one prompt: the dynamic prompt, the outputs
available so far, the execution list and the events. The ``Executor`` (engine/executor.py)
builds one per ``execute`` call and drives ``run`` on a fresh event loop.

A node function runs inside a ``NodeContext`` (engine/context.py). Sync node functions run
directly on the run's event loop thread; a node whose ``FUNCTION`` is a coroutine function
becomes an asyncio task, and other ready nodes run while it waits (§6.8).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from engine import errors
from engine.cache import CacheEntry, ConsumerLedger
from engine.context import InterruptFlag, Interrupted, NodeContext, ProgressReporter, use_context
from engine.events import EventSink, ExecutionResult, RunEvents
from engine.expansion import DuplicateNodeError, ExecutionBlocker, prefix_scope
from engine.graph import DependencyCycleError, DynamicPrompt, ExecutionList, links_of
from engine.invoke import Expansion, find_blocker, list_calls, merge_outputs, merge_ui, output_is_list, split_returns
from engine.node_facts import PASSED_HIDDEN_KINDS, NodeFacts
from engine.prompt import hidden_inputs, is_link, is_output_node, unwrap_value
from engine.signature import SignatureBuilder

if TYPE_CHECKING:
    from engine.executor import Executor

log = logging.getLogger(__name__)


class Outcome(Enum):
    SUCCESS = "success"
    PENDING = "pending"  # waits for lazy inputs or for its expansion's nodes; runs again


@dataclass
class Failure:
    """The node failure (or engine error) that stopped the prompt."""

    node_id: str
    exception: BaseException
    traceback: Any
    inputs: dict[str, list]


_MISSING: Any = object()  # sentinel: a linked output that is not available (lazy, unevaluated)


class PromptRun:
    """Everything that belongs to one prompt's execution."""

    def __init__(
        self, executor: Executor, prompt: dict, prompt_id: str, extra_data: dict, events: EventSink, interrupt: InterruptFlag,
    ) -> None:
        self.executor = executor
        self.registry = executor.registry
        self.cache = executor.cache
        self.prompt_id = prompt_id
        self.interrupt = interrupt
        self.dynprompt = DynamicPrompt(prompt)
        self.facts = NodeFacts(self.registry, self.dynprompt, extra_data)
        self.events = RunEvents(events, prompt_id, self.facts.lineage)
        self.outputs: dict[str, list[list]] = {}
        self.cached_ui: dict[str, dict | None] = {}
        self.ui_outputs: dict[str, dict] = {}
        self.meta: dict[str, dict] = {}
        self.executed: dict[str, None] = {}
        self.looked_up: set[str] = set()
        self.pending_expansions: dict[str, list[Expansion]] = {}
        self.pending_ui: dict[str, dict] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.current_node_id: str | None = None
        self.signatures = SignatureBuilder(self.dynprompt, self.registry.get, self.facts.input_types, self.facts.hidden_value)
        self.execution_list = ExecutionList(self.dynprompt, self.has_output, self.facts.rank_hint, self.facts.is_lazy)
        # Only policies that keep nothing (--cache-none) free outputs during the prompt.
        self.ledger = ConsumerLedger() if getattr(self.cache, "frees_consumed_outputs", False) else None

    # ----------------------------------------------------------------- outputs
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
            self.meta[node_id] = self.facts.node_meta(node_id)
        return True

    def note_reads(self, nodes: dict[str, dict]) -> None:
        """Tell the ledger (if any) which outputs each of ``nodes`` reads through its inputs."""
        if self.ledger is None:
            return
        for node_id, node in nodes.items():
            if isinstance(node, dict):
                self.ledger.add_reads(node_id, [link[0] for _, link in links_of(node)])

    def release_consumed(self, node_id: str) -> None:
        """Free the outputs no node that will still run reads, now that ``node_id`` ran."""
        if self.ledger is None:
            return
        for producer in self.ledger.finished(node_id, self.execution_list.is_staged):
            self.outputs.pop(producer, None)

    def node_context(self, node_id: str) -> NodeContext:
        reporter = ProgressReporter(
            lambda value, total, preview: self.events.report_progress(node_id, value, total, preview), self.interrupt
        )
        display_id, parent_id, real_id = self.facts.lineage(node_id)
        return NodeContext(
            prompt_id=self.prompt_id, node_id=node_id, display_node_id=display_id,
            reporter=reporter, interrupt=self.interrupt, resources=self.executor.resources,
            parent_node_id=parent_id, real_node_id=real_id,
        )

    # ------------------------------------------------------------------- prompt
    async def run(self, outputs_to_execute: list[str]) -> ExecutionResult:
        self.interrupt.clear()
        self.events.message("execution_start", {"prompt_id": self.prompt_id})
        prompt = self.dynprompt.get_original_prompt()
        failure: Failure | None = None
        try:
            self.executor.forget_instances_outside(prompt)
            self.cache.begin_prompt(
                {self.signatures.get(node_id) for node_id in prompt},
                {(node_id, node.get("class_type")) for node_id, node in prompt.items() if isinstance(node, dict)},
            )
            self.note_reads(prompt)
            cached = [node_id for node_id in prompt if self.has_output(node_id)]
            self.events.message("execution_cached", {"nodes": cached, "prompt_id": self.prompt_id})
            for output_id in outputs_to_execute:
                if self.dynprompt.has_node(output_id):
                    self.execution_list.add_node(output_id)
            failure = await self.run_list()
        except Exception as exc:  # an engine bug must not take the worker down: report it
            log.exception("executor failure outside any node")
            failure = Failure(self.current_node_id or "", exc, sys.exc_info()[2], {})
        finally:
            for task in self.tasks.values():
                task.cancel()
            if self.tasks:
                await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            self.cache.end_prompt()

        if failure is None:
            self.events.message("execution_success", {"prompt_id": self.prompt_id})
            return ExecutionResult("success", True, self.events.messages, self.ui_outputs, self.meta)
        self.report_failure(failure)
        return ExecutionResult("error", False, self.events.messages, self.ui_outputs, self.meta)

    async def run_list(self) -> Failure | None:
        """Run staged nodes until none is left; returns the failure that stopped it, if any."""
        execution_list = self.execution_list
        while not execution_list.is_empty():
            node_id = execution_list.next_ready()
            self.current_node_id = node_id
            if node_id is None:
                if not self.tasks:
                    cycle = execution_list.find_cycle()
                    return Failure(cycle[0], DependencyCycleError(cycle), None, {})
                done, _ = await asyncio.wait(self.tasks.values(), return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    finished_id = next(key for key, value in self.tasks.items() if value is task)
                    del self.tasks[finished_id]
                    failure = self.settle(finished_id, task.result())
                    if failure is not None:
                        return failure
                continue
            if self.facts.is_async(self.facts.node_class(node_id)):
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

    def settle(self, node_id: str, outcome: Outcome | Failure) -> Failure | None:
        if isinstance(outcome, Failure):
            return outcome
        if outcome is Outcome.PENDING:
            self.execution_list.requeue(node_id)
        else:
            self.execution_list.complete(node_id)
        return None

    def report_failure(self, failure: Failure) -> None:
        node = self.dynprompt.get_node(failure.node_id) if self.dynprompt.has_node(failure.node_id) else {}
        node_type = node.get("class_type", "")
        if self.dynprompt.has_node(failure.node_id):
            self.events.set_progress(failure.node_id, "error")
        if isinstance(failure.exception, Interrupted):
            self.events.message("execution_interrupted", errors.interrupted(self.prompt_id, failure.node_id, node_type, list(self.executed)))
            return
        self.events.message("execution_error", errors.node_error(
            self.prompt_id, failure.node_id, node_type, list(self.executed), failure.exception,
            failure.traceback, failure.inputs, list(self.outputs),
        ))

    # --------------------------------------------------------------------- node
    async def run_node(self, node_id: str) -> Outcome | Failure:
        inputs: dict[str, list] = {}
        try:
            return await self._run_node(node_id, inputs)
        except Exception as exc:
            if not isinstance(exc, Interrupted):
                log.error("!!! Exception during processing of node %s !!! %s", node_id, exc, exc_info=True)
            return Failure(node_id, exc, sys.exc_info()[2], inputs)

    async def _run_node(self, node_id: str, inputs: dict[str, list]) -> Outcome:
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
            self.events.set_progress(node_id, "finished")
            self.release_consumed(node_id)
            return Outcome.SUCCESS
        if node_id in self.pending_expansions:
            return self.finish_expansion(node_id, node_class)

        inputs.update(self.gather_inputs(node_id, node))
        missing = {name for name, values in inputs.items() if values is _MISSING}
        for name in missing:
            inputs[name] = [None]
        self.events.send("executing", {"node": node_id, "display_node": display_id, "prompt_id": self.prompt_id})
        self.events.set_progress(node_id, "running")
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
                return Outcome.PENDING

        function = getattr(instance, node_class.FUNCTION)
        returns = await self.map_calls(node_id, node_class, function, inputs, block=True)
        return self.store_returns(node_id, node_class, returns)

    def gather_inputs(self, node_id: str, node: dict) -> dict[str, Any]:
        """Each input as a list (§6.3): linked outputs, ``[constant]``, hidden values."""
        input_types = self.facts.input_types(node["class_type"])
        specs = self.facts.input_specs(node["class_type"])
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
                if kind in PASSED_HIDDEN_KINDS:
                    gathered[name] = [self.facts.hidden_value(node_id, kind)]
        return gathered

    async def map_calls(self, node_id: str, node_class: type, function: Callable, inputs: dict[str, list], block: bool) -> list:
        """Call ``function`` once per list index (or once with INPUT_IS_LIST), in the node's context."""
        input_is_list = getattr(node_class, "INPUT_IS_LIST", False)
        context = self.node_context(node_id)
        results: list = []
        awaiting: list[tuple[int, asyncio.Future]] = []
        for index, arguments in enumerate(list_calls(inputs, input_is_list)):
            self.interrupt.check()
            blocker = find_blocker(arguments, input_is_list) if block else None
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

    def store_returns(self, node_id: str, node_class: type, returns: list) -> Outcome:
        """Split the calls' returns into results, UI and expansions (§6.3, §6.7) and store them."""
        split = split_returns(node_class, returns)
        ui = merge_ui(split.uis) if split.uis else None
        if ui:
            self.record_ui(node_id, ui)
        if split.expands:
            if ui:
                self.pending_ui[node_id] = ui
            return self.expand(node_id, split.expansions)
        self.finish(node_id, merge_outputs(split.results, output_is_list(node_class)), ui)
        return Outcome.SUCCESS

    def record_ui(self, node_id: str, ui: dict) -> None:
        self.ui_outputs[node_id] = ui
        self.meta[node_id] = self.facts.node_meta(node_id)
        self.events.send("executed", {
            "node": node_id, "display_node": self.dynprompt.get_display_node_id(node_id), "output": ui, "prompt_id": self.prompt_id,
        })

    def finish(self, node_id: str, outputs: list[list], ui: dict | None) -> None:
        self.outputs[node_id] = outputs
        self.cache.put(self.signatures.get(node_id), CacheEntry(outputs, ui or None, self.facts.owner(node_id)))
        self.events.set_progress(node_id, "finished")
        self.executed[node_id] = None
        self.release_consumed(node_id)

    # ---------------------------------------------------------------- expansion
    def expand(self, node_id: str, expansions: list[Expansion]) -> Outcome:
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
            self.note_reads(graph)
            result_links += [value for value in (result or ()) if is_link(value)]
        if self.ledger is not None:  # the second pass reads what the result links point at
            self.ledger.add_reads(node_id, [link[0] for link in result_links])
        self.pending_expansions[node_id] = expansions
        for output_id in new_outputs:
            self.execution_list.add_node(output_id)
        for link in result_links:
            self.execution_list.add_strong_link(link[0], node_id)
        return Outcome.PENDING

    def finish_expansion(self, node_id: str, node_class: type) -> Outcome:
        """Second pass of an expanded node: its result links now point at computed outputs."""
        expansions = self.pending_expansions.pop(node_id)
        results = [result for _, result in expansions if result is not None]

        def resolve(link: list) -> list:
            produced = self.outputs.get(link[0])
            if produced is None or int(link[1]) >= len(produced):
                raise KeyError(f"node {node_id}'s expansion result links to {link}, which produced no such output")
            return list(produced[int(link[1])])

        self.finish(node_id, merge_outputs(results, output_is_list(node_class), resolve), self.pending_ui.pop(node_id, None))
        return Outcome.SUCCESS


def _run_without_suspending(node_id: str, coroutine: Any) -> Any:
    """Drive a sync node's coroutine to its result without a task (it never really awaits)."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return finished.value
    coroutine.close()
    error = RuntimeError(f"node {node_id} is not declared async (FUNCTION is no coroutine function) but awaited")
    return Failure(node_id, error, None, {})
