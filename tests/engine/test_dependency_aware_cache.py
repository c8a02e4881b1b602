"""NoCache is dependency-aware (ComfyUI's ``--cache-none``, comfy-compat §6.5).

Within a prompt, an output is freed as soon as every node that reads it has run, so a long
chain holds about two outputs at a time; the UI results of output nodes stay for history.
Live outputs are counted with a value type whose instances count themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.cache import ConsumerLedger, KeepLastPrompt, NoCache
from engine.expansion import GraphBuilder
from tests.helpers.engine_harness import Harness

CHAIN_LENGTH = 12


@dataclass
class LiveCount:
    alive: int = 0
    peak: int = 0


def blob_nodes(count: LiveCount) -> list[type]:
    """Nodes passing a ``BLOB`` along; each made Blob counts itself while alive."""

    class Blob:
        def __init__(self, depth: int) -> None:
            self.depth = depth
            count.alive += 1
            count.peak = max(count.peak, count.alive)

        def __del__(self) -> None:
            count.alive -= 1

    class BlobSource:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        RETURN_TYPES = ("BLOB",)
        FUNCTION = "make"

        def make(self):
            return (Blob(0),)

    class BlobStep:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"blob": ("BLOB",)}}

        RETURN_TYPES = ("BLOB",)
        FUNCTION = "step"

        def step(self, blob):
            return (Blob(blob.depth + 1),)

    class BlobJoin:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"first": ("BLOB",), "second": ("BLOB",)}}

        RETURN_TYPES = ("BLOB",)
        FUNCTION = "join"

        def join(self, first, second):
            return (Blob(max(first.depth, second.depth) + 1),)

    class BlobExpandStep:
        """Expands into two BlobSteps; its result links to the second one's output.

        ``rawLink`` hands it the link, not the value, so the sub-graph reads the producer.
        """

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"blob": ("BLOB", {"rawLink": True})}}

        RETURN_TYPES = ("BLOB",)
        FUNCTION = "expand"

        def expand(self, blob):
            graph = GraphBuilder()
            first = graph.node("BlobStep", blob=blob)
            second = graph.node("BlobStep", blob=first.out(0))
            return {"result": (second.out(0),), "expand": graph.finalize()}

    class BlobDepth:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"blob": ("BLOB",)}}

        RETURN_TYPES = ("BLOB",)
        OUTPUT_NODE = True
        FUNCTION = "show"

        def show(self, blob):
            return {"ui": {"depth": [blob.depth], "alive": [count.alive]}, "result": (blob,)}

    return [BlobSource, BlobStep, BlobJoin, BlobExpandStep, BlobDepth]


def chain(length: int) -> dict:
    prompt = {"0": {"class_type": "BlobSource", "inputs": {}}}
    for index in range(1, length + 1):
        prompt[str(index)] = {"class_type": "BlobStep", "inputs": {"blob": [str(index - 1), 0]}}
    prompt["out"] = {"class_type": "BlobDepth", "inputs": {"blob": [str(length), 0]}}
    return prompt


def harness_with_blobs(cache) -> tuple[Harness, LiveCount]:
    count = LiveCount()
    harness = Harness(cache=cache)
    harness.add(*blob_nodes(count))
    return harness, count


def test_a_long_chain_holds_at_most_two_outputs_with_no_cache():
    harness, count = harness_with_blobs(NoCache())
    run = harness.run(chain(CHAIN_LENGTH))
    assert run.result.status_str == "success"
    assert run.result.outputs["out"]["depth"] == [CHAIN_LENGTH]
    assert count.peak == 2
    assert count.alive == 0  # nothing outlives the prompt


def test_the_default_policy_keeps_every_output_of_the_chain():
    harness, count = harness_with_blobs(KeepLastPrompt())
    harness.run(chain(CHAIN_LENGTH))
    assert count.peak == CHAIN_LENGTH + 1
    assert count.alive == CHAIN_LENGTH + 1  # cached for the next prompt


def test_an_output_read_twice_lives_until_its_last_reader_ran():
    harness, count = harness_with_blobs(NoCache())
    prompt = {
        "src": {"class_type": "BlobSource", "inputs": {}},
        "a": {"class_type": "BlobStep", "inputs": {"blob": ["src", 0]}},
        "b": {"class_type": "BlobStep", "inputs": {"blob": ["a", 0]}},
        "join": {"class_type": "BlobJoin", "inputs": {"first": ["b", 0], "second": ["src", 0]}},
        "out": {"class_type": "BlobDepth", "inputs": {"blob": ["join", 0]}},
    }
    run = harness.run(prompt)
    assert run.result.outputs["out"]["depth"] == [3]
    # src stays for join while a and b run: src, a, b alive when b is made.
    assert count.peak == 3
    assert count.alive == 0


def test_the_output_nodes_ui_is_kept_for_history():
    harness, _ = harness_with_blobs(NoCache())
    run = harness.run(chain(3))
    assert run.result.outputs == {"out": {"depth": [3], "alive": [1]}}
    assert [event["output"] for event in run.sink.of("executed")] == [{"depth": [3], "alive": [1]}]


def test_an_expanding_node_still_resolves_its_result_links():
    harness, count = harness_with_blobs(NoCache())
    prompt = {
        "0": {"class_type": "BlobSource", "inputs": {}},
        "1": {"class_type": "BlobExpandStep", "inputs": {"blob": ["0", 0]}},
        "2": {"class_type": "BlobExpandStep", "inputs": {"blob": ["1", 0]}},
        "out": {"class_type": "BlobDepth", "inputs": {"blob": ["2", 0]}},
    }
    run = harness.run(prompt)
    assert run.result.status_str == "success", run.sink.of("execution_error")
    assert run.result.outputs["out"]["depth"] == [4]
    assert count.alive == 0


def test_lazy_inputs_and_lists_still_work_with_no_cache():
    harness = Harness(cache=NoCache())
    prompt = {
        "1": {"class_type": "Constant", "inputs": {"value": 4}},
        "2": {"class_type": "Constant", "inputs": {"value": 9}},
        "sw": {"class_type": "Switch", "inputs": {"select": False, "on_true": ["1", 0], "on_false": ["2", 0]}},
        "add": {"class_type": "Add", "inputs": {"a": ["sw", 0], "b": 1}},
        "out": {"class_type": "Show", "inputs": {"value": ["add", 0]}},
    }
    run = harness.run(prompt)
    assert run.result.status_str == "success"
    assert "1" not in harness.log.nodes()
    assert run.result.outputs["out"] == {"values": [10]}


class TestConsumerLedger:
    def test_a_producer_is_released_when_its_last_reader_that_will_run_finishes(self):
        ledger = ConsumerLedger()
        ledger.add_reads("b", ["a"])
        ledger.add_reads("c", ["a"])
        ledger.add_reads("d", ["b"])
        staged = {"a", "b", "c", "d"}
        assert ledger.finished("b", staged.__contains__) == []  # c still reads a; d reads b
        staged.discard("b")
        assert ledger.finished("c", staged.__contains__) == ["a", "c"]  # nobody reads c

    def test_readers_that_will_not_run_hold_nothing(self):
        ledger = ConsumerLedger()
        ledger.add_reads("b", ["a"])
        ledger.add_reads("unreached", ["a"])
        assert ledger.finished("b", {"b"}.__contains__) == ["a", "b"]
