"""server.py's cache flags pick the engine's cache policy (comfy-compat §6.5, §13)."""

from __future__ import annotations

import pytest

import server
from engine.cache import LRU, KeepLastPrompt, NoCache


def policy_for(*flags: str):
    return server.cache_policy(server.parse_args(list(flags)))


def test_the_default_keeps_the_last_prompt_without_a_ram_ceiling():
    policy = policy_for()
    assert type(policy) is KeepLastPrompt and policy.ram_limit_bytes is None


def test_cache_lru_keeps_n_entries():
    policy = policy_for("--cache-lru", "7")
    assert type(policy) is LRU and policy.max_entries == 7


def test_cache_none_is_the_dependency_aware_policy():
    assert type(policy_for("--cache-none")) is NoCache


@pytest.mark.parametrize("flags", [("--cache-ram-gb", "1.5"), ("--cache-lru", "3", "--cache-ram-gb", "1.5")])
def test_cache_ram_gb_sets_the_ceiling_in_bytes(flags):
    assert policy_for(*flags).ram_limit_bytes == int(1.5 * 1024**3)


def test_cache_policies_are_exclusive():
    with pytest.raises(SystemExit):
        server.parse_args(["--cache-lru", "3", "--cache-none"])
