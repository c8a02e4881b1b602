"""Runs validated prompts: the worker's one ``Executor`` (comfy-compat §6).

One ``Executor`` lives as long as the worker. It owns the output cache (a ``CachePolicy``)
and the node instances (kept per ``(node_id, class_type)`` across prompts, §6.5). Each call
to ``execute`` builds a ``PromptRun`` (engine/run.py) that holds everything belonging to that
one prompt and drives it on a fresh event loop. The parts live in their own modules:

- engine/run.py: one prompt's execution (order, lazy inputs, expansion, failure);
- engine/invoke.py: list mapping around node calls and merging their returns (§6.3);
- engine/node_facts.py: per-prompt lookups about nodes (INPUT_TYPES, lazy, async, lineage);
- engine/events.py: ``EventSink``, ``ExecutionResult`` and a run's events and messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from engine.cache import CachePolicy, KeepLastPrompt
from engine.context import InterruptFlag
from engine.events import EventSink, ExecutionResult
from engine.invoke import list_calls, merge_outputs, merge_ui
from engine.registry import NodeRegistry
from engine.run import PromptRun

__all__ = ["EventSink", "ExecutionResult", "Executor", "list_calls", "merge_outputs", "merge_ui"]


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
        run = PromptRun(self, prompt, prompt_id, extra_data or {}, events, interrupt)
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
