"""Output caches keyed by input signature, and the policies that decide what to keep (§6.5).

An entry holds a node's outputs (one list per output slot, comfy-compat §6.3) and its UI
result. The executor asks the policy at the start of a prompt (``begin_prompt``, with the
signatures of the prompt's nodes and their ``(node_id, class_type)`` owners), looks entries
up by signature and stores new ones.

- ``KeepLastPrompt`` (ComfyUI's CLASSIC): at the start of a prompt, drop every entry the new
  prompt does not use, so roughly the last prompt's results stay. Entries of nodes made by an
  expansion belong to the expanding node (``CacheEntry.owner``) and stay while it is in the
  prompt, so an edited expanding node re-runs only the parts of its sub-graph that changed
  (ComfyUI's per-parent sub-caches).
- ``LRU(max_entries)``: keep that many entries across prompts, least recently used go first.
- ``NoCache`` (ComfyUI's dependency-aware ``--cache-none``): keep nothing across prompts,
  and free each output inside the running prompt as soon as every node that reads it has
  run, so a long chain holds about two outputs at a time. The policy says so with
  ``frees_consumed_outputs``; the run keeps the books in a ``ConsumerLedger``. UI results
  of output nodes are not outputs: they stay for the history entry.

Each takes an optional ``ram_limit_bytes``: past it, least recently used entries are evicted.
The size of an entry comes from the ``sizeof`` hook (default ``estimate_size``, which sums
the tensors found inside the outputs by duck typing, without importing torch).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from engine.signature import Signature


@dataclass
class CacheEntry:
    outputs: list[list]
    ui: dict | None = None
    owner: tuple[str, str] | None = None  # (node_id, class_type) of the expanding node, if any


def estimate_size(value: Any, _depth: int = 0) -> int:
    """Bytes held by tensors/arrays inside ``value`` (``nbytes``, or element_size*nelement)."""
    if _depth > 8:
        return 0
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    element_size = getattr(value, "element_size", None)
    nelement = getattr(value, "nelement", None)
    if callable(element_size) and callable(nelement):
        return int(element_size()) * int(nelement())
    if isinstance(value, dict):
        return sum(estimate_size(item, _depth + 1) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(estimate_size(item, _depth + 1) for item in value)
    return 0


class CachePolicy(Protocol):
    frees_consumed_outputs: bool  # True: the run drops an output once all its readers ran

    def begin_prompt(self, signatures: Collection[Signature], owners: Collection[tuple[str, str]] = ()) -> None: ...
    def get(self, signature: Signature) -> CacheEntry | None: ...
    def put(self, signature: Signature, entry: CacheEntry) -> None: ...
    def end_prompt(self) -> None: ...
    def clear(self) -> None: ...


class SignatureCache:
    """Entries in least-recently-used order, with an optional RAM ceiling."""

    frees_consumed_outputs = False

    def __init__(self, ram_limit_bytes: int | None = None, sizeof: Callable[[Any], int] | None = None) -> None:
        self.ram_limit_bytes = ram_limit_bytes
        self.sizeof = sizeof or estimate_size
        self._entries: OrderedDict[Signature, CacheEntry] = OrderedDict()
        self._sizes: dict[Signature, int] = {}
        self.total_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, signature: object) -> bool:
        return signature in self._entries

    def begin_prompt(self, signatures: Collection[Signature], owners: Collection[tuple[str, str]] = ()) -> None:
        """Called before a prompt runs with its nodes' signatures and ``(node_id, class_type)``s."""

    def end_prompt(self) -> None:
        """Called after the prompt ran."""

    def get(self, signature: Signature) -> CacheEntry | None:
        entry = self._entries.get(signature)
        if entry is not None:
            self._entries.move_to_end(signature)
        return entry

    def put(self, signature: Signature, entry: CacheEntry) -> None:
        self._remove(signature)
        size = self.sizeof(entry.outputs) if self.ram_limit_bytes is not None else 0
        self._entries[signature] = entry
        self._sizes[signature] = size
        self.total_bytes += size
        self._enforce_limits()

    def clear(self) -> None:
        self._entries.clear()
        self._sizes.clear()
        self.total_bytes = 0

    def _remove(self, signature: Signature) -> None:
        if signature in self._entries:
            del self._entries[signature]
            self.total_bytes -= self._sizes.pop(signature)

    def _evict_oldest(self) -> None:
        self._remove(next(iter(self._entries)))

    def _over_limit(self) -> bool:
        return self.ram_limit_bytes is not None and self.total_bytes > self.ram_limit_bytes

    def _enforce_limits(self) -> None:
        while self._entries and self._over_limit():
            self._evict_oldest()

    def _keep_only(self, signatures: Iterable[Signature], owners: Iterable[tuple[str, str]]) -> None:
        keep, keep_owners = set(signatures), set(owners)
        unused = [s for s, entry in self._entries.items() if s not in keep and entry.owner not in keep_owners]
        for signature in unused:
            self._remove(signature)


class KeepLastPrompt(SignatureCache):
    """Keeps the entries the current prompt can use; the rest go when it starts."""

    def begin_prompt(self, signatures: Collection[Signature], owners: Collection[tuple[str, str]] = ()) -> None:
        self._keep_only(signatures, owners)


class LRU(SignatureCache):
    """Keeps at most ``max_entries`` entries across prompts, least recently used evicted."""

    def __init__(self, max_entries: int, ram_limit_bytes: int | None = None, sizeof: Callable[[Any], int] | None = None) -> None:
        super().__init__(ram_limit_bytes, sizeof)
        if max_entries < 1:
            raise ValueError("LRU cache needs max_entries >= 1")
        self.max_entries = max_entries

    def _over_limit(self) -> bool:
        return len(self._entries) > self.max_entries or super()._over_limit()


class NoCache(SignatureCache):
    """Keeps nothing across prompts; in a prompt, an output lives until its readers have run."""

    frees_consumed_outputs = True

    def put(self, signature: Signature, entry: CacheEntry) -> None:
        return None


class ConsumerLedger:
    """Which nodes still have to read each node's output, within one prompt (``--cache-none``).

    A reader reads a producer through an input link, or, for an expanding node, through a
    link in its expansion's ``result``. When a reader finishes, ``finished`` names the
    outputs nobody is still going to read: its producers whose remaining readers will not
    run (``will_run`` false), and the reader itself when nothing that will run reads it. A
    reader that is not going to run (not staged) does not hold an output: if it is staged
    later, its producer simply runs again.
    """

    def __init__(self) -> None:
        self._readers: dict[str, set[str]] = {}  # producer -> readers that have not finished
        self._reads: dict[str, set[str]] = {}  # reader -> producers it reads

    def add_reads(self, reader: str, producers: Iterable[str]) -> None:
        for producer in producers:
            self._readers.setdefault(producer, set()).add(reader)
            self._reads.setdefault(reader, set()).add(producer)

    def finished(self, reader: str, will_run: Callable[[str], bool]) -> list[str]:
        """The outputs that may be freed now that ``reader`` has run."""
        released = []
        for producer in sorted(self._reads.pop(reader, ())):
            waiting = self._readers.get(producer, set())
            waiting.discard(reader)
            if not any(will_run(other) for other in waiting):
                released.append(producer)
        if not any(will_run(other) for other in self._readers.get(reader, ())):
            released.append(reader)
        return released
