"""Stub node classes and a harness for the engine tests.

The stub classes are built per test by ``make_stub_nodes`` so that each test gets a fresh
``CallLog`` (which node ran, with what) and no state leaks between tests. Test modules import
what they need, the ``harness`` fixture included (a module, not a conftest.py: other test
folders import their own ``conftest`` by name, which a second conftest.py would shadow).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from engine.cache import CachePolicy, KeepLastPrompt
from engine.context import InterruptFlag, current_context
from engine.executor import ExecutionResult, Executor
from engine.expansion import ExecutionBlocker, GraphBuilder
from engine.registry import NodeRegistry
from engine.validation import ValidationResult, validate_prompt


class AnyType(str):
    """ComfyUI's ``IO.ANY`` idiom: a str whose ``!=`` never holds, so it matches any type."""

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


ANY = AnyType("*")


@dataclass
class CallLog:
    calls: list[tuple[str, str, dict]] = field(default_factory=list)

    def record(self, class_type: str, kwargs: dict) -> None:
        context = current_context()
        self.calls.append((class_type, context.node_id if context else "?", dict(kwargs)))

    def count(self, class_type: str) -> int:
        return sum(1 for name, _, _ in self.calls if name == class_type)

    def nodes(self) -> list[str]:
        return [node_id for _, node_id, _ in self.calls]


def make_stub_nodes(log: CallLog) -> dict[str, type]:
    """The stub node classes the engine tests use, recording every call into ``log``."""

    class Constant:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("INT", {"default": 0, "min": -1000, "max": 1000})}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"
        CATEGORY = "test"

        def run(self, value):
            log.record("Constant", {"value": value})
            return (value,)

    class Add:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"a": ("INT",), "b": ("INT", {"default": 0, "min": -1000, "max": 1000})}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "add"

        def add(self, a, b):
            log.record("Add", {"a": a, "b": b})
            return (a + b,)

    class Show:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": (ANY,)}}

        RETURN_TYPES = ()
        FUNCTION = "show"
        OUTPUT_NODE = True

        def show(self, value):
            log.record("Show", {"value": value})
            return {"ui": {"values": [value]}}

    class Switch:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {
                "select": ("BOOLEAN", {"default": True}),
                "on_true": ("INT", {"lazy": True}),
                "on_false": ("INT", {"lazy": True}),
            }}

        RETURN_TYPES = ("INT",)
        FUNCTION = "pick"

        def check_lazy_status(self, select, on_true=None, on_false=None):
            log.record("Switch.check_lazy_status", {"select": select, "on_true": on_true, "on_false": on_false})
            return ["on_true"] if select else ["on_false"]

        def pick(self, select, on_true=None, on_false=None):
            log.record("Switch", {"select": select})
            return (on_true if select else on_false,)

    class Fail:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("INT",)}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "fail"

        def fail(self, value):
            log.record("Fail", {"value": value})
            raise ValueError(f"cannot handle {value}")

    class MakeList:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"count": ("INT", {"default": 3, "min": 0, "max": 100})}}

        RETURN_TYPES = ("INT",)
        OUTPUT_IS_LIST = (True,)
        FUNCTION = "make"

        def make(self, count):
            log.record("MakeList", {"count": count})
            return (list(range(1, count + 1)),)

    class SumList:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"values": ("INT",)}}

        RETURN_TYPES = ("INT",)
        INPUT_IS_LIST = True
        FUNCTION = "total"

        def total(self, values):
            log.record("SumList", {"values": values})
            return (sum(values),)

    class Block:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("INT",), "message": ("STRING", {"default": ""})}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "block"

        def block(self, value, message):
            log.record("Block", {"value": value})
            return (ExecutionBlocker(message or None),)

    class AsyncDouble:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("INT",), "delay": ("FLOAT", {"default": 0.0})}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "double"

        async def double(self, value, delay):
            log.record("AsyncDouble.start", {"value": value})
            await asyncio.sleep(delay)
            log.record("AsyncDouble", {"value": value})
            return (value * 2,)

    class ExpandSum:
        """Expands into a chain of Add nodes that adds ``value`` to itself ``times`` times."""

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("INT",), "times": ("INT", {"default": 2, "min": 1, "max": 10})}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "expand"

        def expand(self, value, times):
            log.record("ExpandSum", {"value": value, "times": times})
            graph = GraphBuilder()
            total = graph.node("Constant", value=0)
            for _ in range(times):
                total = graph.node("Add", a=total.out(0), b=value)
            return {"result": (total.out(0),), "expand": graph.finalize()}

    return {cls.__name__: cls for cls in (Constant, Add, Show, Switch, Fail, MakeList, SumList, Block, AsyncDouble, ExpandSum)}


class RecordingSink:
    """An EventSink that keeps every event in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []
        self.previews: list[tuple[Any, dict]] = []

    def send(self, event: str, data: dict) -> None:
        self.events.append((event, data))

    def send_preview(self, preview: Any, meta: dict) -> None:
        self.previews.append((preview, meta))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def of(self, name: str) -> list[dict]:
        return [data for event, data in self.events if event == name]


@dataclass
class Run:
    result: ExecutionResult
    sink: RecordingSink
    validation: ValidationResult | None


class Harness:
    """A registry with the stub nodes, one executor, and helpers to run prompts."""

    def __init__(self, cache: CachePolicy | None = None) -> None:
        self.log = CallLog()
        self.registry = NodeRegistry()
        self.registry.add_module(make_stub_nodes(self.log), None, "tests.stubs", builtin=True)
        self.executor = Executor(self.registry, cache if cache is not None else KeepLastPrompt(), {})
        self.interrupt = InterruptFlag()
        self.prompt_count = 0

    def add(self, *classes: type) -> None:
        self.registry.add_module({cls.__name__: cls for cls in classes}, None, "tests.extra", builtin=False)

    def run(self, prompt: dict, outputs: list[str] | None = None, validate: bool = True, extra_data: dict | None = None) -> Run:
        validation = None
        if validate:
            validation = validate_prompt(self.registry, prompt)
            assert validation.ok, (validation.error, validation.node_errors)
            outputs = validation.outputs if outputs is None else outputs
        self.prompt_count += 1
        sink = RecordingSink()
        result = self.executor.execute(prompt, f"prompt-{self.prompt_count}", extra_data or {}, outputs or [], sink, self.interrupt)
        return Run(result, sink, validation)
