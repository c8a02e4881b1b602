"""The prompt as a growing graph, and the order in which its nodes run (comfy-compat §6.2).

``DynamicPrompt`` is the submitted prompt plus the ephemeral nodes that expansions add while
it runs. ``ExecutionList`` is a topological "dissolve" (Kahn's algorithm) over the strong
dependencies between staged nodes: it starts from the requested outputs, pulls in their
non-lazy ancestors whose outputs are not yet available, and releases a node once everything
it waits for has produced output. Among ready nodes it prefers, as ComfyUI's
``ux_friendly_pick_node`` does, output and async nodes, then nodes feeding an output
directly, then two hops away, then the earliest staged, so one output's branch finishes
before unrelated work starts.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from typing import Any

from engine.prompt import is_link


class DependencyCycleError(Exception):
    """Nodes wait on each other in a loop; reported as ``graph.DependencyCycleError``."""

    exception_type = "graph.DependencyCycleError"

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("Dependency cycle detected: " + " -> ".join(cycle))


class DynamicPrompt:
    """The original prompt plus ephemeral nodes added by expansion, with their lineage."""

    def __init__(self, original_prompt: dict) -> None:
        self.original_prompt = original_prompt
        self.ephemeral_prompt: dict[str, dict] = {}
        self.ephemeral_parents: dict[str, str] = {}
        self.ephemeral_display: dict[str, str] = {}

    def get_node(self, node_id: str) -> dict:
        node = self.original_prompt.get(node_id)
        if node is None:
            node = self.ephemeral_prompt.get(node_id)
        if node is None:
            raise KeyError(f"Node {node_id} not found")
        return node

    def has_node(self, node_id: str) -> bool:
        return node_id in self.original_prompt or node_id in self.ephemeral_prompt

    def add_ephemeral_node(self, node_id: str, node_info: dict, parent_id: str, display_id: str) -> None:
        self.ephemeral_prompt[node_id] = node_info
        self.ephemeral_parents[node_id] = parent_id
        self.ephemeral_display[node_id] = display_id

    def get_real_node_id(self, node_id: str) -> str:
        """The node of the submitted prompt whose expansion (transitively) created this one."""
        while node_id in self.ephemeral_parents:
            node_id = self.ephemeral_parents[node_id]
        return node_id

    def get_parent_node_id(self, node_id: str) -> str | None:
        return self.ephemeral_parents.get(node_id)

    def get_display_node_id(self, node_id: str) -> str:
        while node_id in self.ephemeral_display:
            node_id = self.ephemeral_display[node_id]
        return node_id

    def all_node_ids(self) -> Iterator[str]:
        yield from self.original_prompt
        yield from self.ephemeral_prompt

    def get_original_prompt(self) -> dict:
        return self.original_prompt


class ExecutionList:
    """Which staged nodes wait on which, and which one to run next.

    ``has_output(node_id)`` says whether a node's output is already available (cached or
    computed this prompt); ``rank_hint(node_id)`` returns 0 for output/async nodes;
    ``is_lazy(node_id, input_name)`` says whether an input is declared lazy.

    The dissolve keeps its edges in two dicts (``waits_for`` and ``needed_by``) because it
    runs for every node of every prompt; networkx analyses the remaining graph when nothing
    can run (``find_cycle``).
    """

    def __init__(
        self,
        dynprompt: DynamicPrompt,
        has_output: Callable[[str], bool],
        rank_hint: Callable[[str], int],
        is_lazy: Callable[[str, str], bool],
    ) -> None:
        self.dynprompt = dynprompt
        self.has_output = has_output
        self.rank_hint = rank_hint
        self.is_lazy = is_lazy
        self.waits_for: dict[str, set[str]] = {}  # staged node -> staged nodes it waits for
        self.needed_by: dict[str, set[str]] = {}  # staged node -> staged nodes waiting for it
        self._sequence: dict[str, int] = {}
        self._counter = itertools.count()
        self._ready: list[tuple[int, int, str]] = []
        self._queued: set[str] = set()
        self._running: set[str] = set()

    def __len__(self) -> int:
        return len(self.waits_for)

    def is_staged(self, node_id: str) -> bool:
        return node_id in self.waits_for

    def is_empty(self) -> bool:
        return not self.waits_for

    def staged_ids(self) -> list[str]:
        return list(self.waits_for)

    def add_node(self, node_id: str, include_lazy: bool = False) -> None:
        """Stage ``node_id`` and the non-lazy ancestors whose output is not available yet."""
        to_visit = [node_id]
        added = []
        links = []
        while to_visit:
            current = to_visit.pop()
            if current in self.waits_for:
                continue
            self.waits_for[current] = set()
            self.needed_by[current] = set()
            self._sequence[current] = next(self._counter)
            added.append(current)
            for input_name, value in self.dynprompt.get_node(current).get("inputs", {}).items():
                if not is_link(value) or not self.dynprompt.has_node(value[0]):
                    continue
                if include_lazy or not self.is_lazy(current, input_name):
                    if not self.has_output(value[0]):
                        to_visit.append(value[0])
                    links.append((value[0], current))
        for source, target in links:
            self.add_strong_link(source, target)
        for node in added:
            self._release_if_ready(node)

    def add_strong_link(self, source: str, target: str) -> None:
        """Make ``target`` wait for ``source`` unless ``source``'s output is available."""
        if self.has_output(source) or not self.dynprompt.has_node(source):
            return
        if source not in self.waits_for:
            self.add_node(source)
        if source not in self.waits_for[target]:
            self.waits_for[target].add(source)
            self.needed_by[source].add(target)
            self._queued.discard(target)

    def make_input_strong_link(self, node_id: str, input_name: str) -> None:
        link = self.dynprompt.get_node(node_id)["inputs"][input_name]
        self.add_strong_link(link[0], node_id)

    def _release_if_ready(self, node_id: str) -> None:
        if node_id in self._queued or node_id in self._running or node_id not in self.waits_for:
            return
        if not self.waits_for[node_id]:
            heapq.heappush(self._ready, (self._rank(node_id), self._sequence[node_id], node_id))
            self._queued.add(node_id)

    def _rank(self, node_id: str) -> int:
        """0 output/async, 1 feeds one directly, 2 two hops before one, 3 anything else."""
        if self.rank_hint(node_id) == 0:
            return 0
        frontier = self.needed_by[node_id]
        for hops in (1, 2):
            if any(self.rank_hint(n) == 0 for n in frontier):
                return hops
            frontier = {after for n in frontier for after in self.needed_by[n]}
        return 3

    def next_ready(self) -> str | None:
        """Pop the preferred ready node, or None when none is ready."""
        while self._ready:
            _, _, node_id = heapq.heappop(self._ready)
            if node_id not in self._queued:
                continue  # made to wait again after it was queued (a lazy link was added)
            self._queued.discard(node_id)
            self._running.add(node_id)
            return node_id
        return None

    def requeue(self, node_id: str) -> None:
        """A node went PENDING (lazy inputs requested): run it again once unblocked."""
        self._running.discard(node_id)
        self._release_if_ready(node_id)

    def complete(self, node_id: str) -> None:
        """``node_id`` produced its output: release the nodes that waited for it."""
        self._running.discard(node_id)
        self._queued.discard(node_id)
        del self.waits_for[node_id]
        for target in self.needed_by.pop(node_id):
            self.waits_for[target].discard(node_id)
            self._release_if_ready(target)

    def find_cycle(self) -> list[str]:
        """The node ids of one dependency cycle among the staged nodes (first repeated last)."""
        import networkx

        graph = networkx.DiGraph()
        graph.add_nodes_from(self.waits_for)
        graph.add_edges_from((source, target) for target, sources in self.waits_for.items() for source in sources)
        try:
            edges = networkx.find_cycle(graph)
        except networkx.NetworkXNoCycle:
            return sorted(self.waits_for, key=self._sequence.__getitem__)[:1]
        return [edge[0] for edge in edges] + [edges[0][0]]


def links_of(node: dict) -> Iterator[tuple[str, Any]]:
    """``(input_name, link)`` for each linked input of an API-format node."""
    for name, value in node.get("inputs", {}).items():
        if is_link(value):
            yield name, value
