"""Cache policies: KeepLastPrompt, LRU(n), NoCache and the RAM ceiling (engine/cache.py)."""

from __future__ import annotations

import pytest

from engine.cache import LRU, CacheEntry, KeepLastPrompt, NoCache, estimate_size


class FakeTensor:
    """Duck-typed like a torch tensor: element_size() * nelement() bytes."""

    def __init__(self, elements: int, element_size: int = 4) -> None:
        self._elements, self._element_size = elements, element_size

    def element_size(self) -> int:
        return self._element_size

    def nelement(self) -> int:
        return self._elements


class FakeArray:
    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes


def entry(*values) -> CacheEntry:
    return CacheEntry([list(values)])


class TestEstimateSize:
    def test_counts_tensors_and_arrays_inside_nested_outputs(self):
        outputs = [[FakeTensor(10)], [{"samples": FakeTensor(5, 2), "noise_mask": None}], [[FakeArray(7), "text", 3]]]
        assert estimate_size(outputs) == 10 * 4 + 5 * 2 + 7

    def test_plain_values_weigh_nothing(self):
        assert estimate_size([[1, 2.0, "x", None]]) == 0


class TestKeepLastPrompt:
    def test_keeps_only_what_the_new_prompt_uses(self):
        cache = KeepLastPrompt()
        cache.put(b"a", entry(1))
        cache.put(b"b", entry(2))
        cache.begin_prompt({b"b", b"c"})
        assert cache.get(b"a") is None
        assert cache.get(b"b").outputs == [[2]]

    def test_entries_put_during_a_prompt_stay_until_the_next(self):
        cache = KeepLastPrompt()
        cache.begin_prompt(set())
        cache.put(b"new", entry(1))
        cache.end_prompt()
        assert b"new" in cache


class TestLRU:
    def test_keeps_at_most_n_entries_evicting_the_least_recently_used(self):
        cache = LRU(2)
        cache.put(b"a", entry(1))
        cache.put(b"b", entry(2))
        cache.get(b"a")
        cache.put(b"c", entry(3))
        assert (b"a" in cache, b"b" in cache, b"c" in cache) == (True, False, True)

    def test_survives_prompts_that_do_not_use_its_entries(self):
        cache = LRU(5)
        cache.put(b"a", entry(1))
        cache.begin_prompt({b"z"})
        assert cache.get(b"a") is not None

    def test_needs_a_positive_size(self):
        with pytest.raises(ValueError):
            LRU(0)


class TestNoCache:
    def test_never_stores(self):
        cache = NoCache()
        cache.put(b"a", entry(1))
        assert cache.get(b"a") is None and len(cache) == 0


class TestRamCeiling:
    def test_least_recently_used_outputs_go_past_the_limit(self):
        cache = LRU(100, ram_limit_bytes=100)
        cache.put(b"a", entry(FakeTensor(10)))  # 40 bytes
        cache.put(b"b", entry(FakeTensor(10)))  # 80
        cache.get(b"a")
        cache.put(b"c", entry(FakeTensor(10)))  # 120 > 100: "b" is the least recently used
        assert (b"a" in cache, b"b" in cache, b"c" in cache) == (True, False, True)
        assert cache.total_bytes == 80

    def test_an_entry_larger_than_the_limit_is_not_kept(self):
        cache = KeepLastPrompt(ram_limit_bytes=10)
        cache.put(b"big", entry(FakeArray(11)))
        assert len(cache) == 0 and cache.total_bytes == 0

    def test_replacing_an_entry_recounts_its_size(self):
        cache = KeepLastPrompt(ram_limit_bytes=1000)
        cache.put(b"a", entry(FakeArray(300)))
        cache.put(b"a", entry(FakeArray(100)))
        assert cache.total_bytes == 100

    def test_a_custom_sizeof_hook_is_used(self):
        cache = KeepLastPrompt(ram_limit_bytes=5, sizeof=lambda outputs: 3)
        cache.put(b"a", entry(1))
        cache.put(b"b", entry(2))
        assert (b"a" in cache, b"b" in cache) == (False, True)

    def test_clear_empties_the_cache(self):
        cache = LRU(3, ram_limit_bytes=1000)
        cache.put(b"a", entry(FakeArray(10)))
        cache.clear()
        assert len(cache) == 0 and cache.total_bytes == 0


def test_the_executor_uses_a_sizeof_hook_from_resources():
    from engine.executor import Executor
    from engine.registry import NodeRegistry

    cache = KeepLastPrompt(ram_limit_bytes=1)
    hook = lambda outputs: 0  # noqa: E731
    Executor(NodeRegistry(), cache, {"sizeof": hook})
    assert cache.sizeof is hook


class TestExpansionOwners:
    def test_keep_last_prompt_keeps_entries_of_an_expanding_node_still_in_the_prompt(self):
        cache = KeepLastPrompt()
        cache.put(b"inner", CacheEntry([[1]], owner=("5", "ExpandSum")))
        cache.put(b"gone", CacheEntry([[2]], owner=("6", "ExpandSum")))
        cache.begin_prompt(set(), {("5", "ExpandSum")})
        assert (b"inner" in cache, b"gone" in cache) == (True, False)

    def test_a_changed_class_under_the_same_id_drops_them(self):
        cache = KeepLastPrompt()
        cache.put(b"inner", CacheEntry([[1]], owner=("5", "ExpandSum")))
        cache.begin_prompt(set(), {("5", "Other")})
        assert b"inner" not in cache
