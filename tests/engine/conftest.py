"""The engine tests' fixture: a fresh ``Harness`` (registry of test nodes + executor) per test."""

from __future__ import annotations

import pytest

from tests.helpers.engine_harness import Harness


@pytest.fixture
def harness() -> Harness:
    return Harness()
