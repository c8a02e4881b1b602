"""The lazy ``resources`` mapping and the server-side node context (api/resources.py)."""

from __future__ import annotations

import threading

import pytest

from api.resources import LazyResources, call_with_resources
from engine.context import InterruptFlag, current_context


def test_a_factory_runs_once_on_first_access_even_from_many_threads():
    calls = []

    def create():
        calls.append(1)
        return object()

    resources = LazyResources({"options": {"cpu": True}}, {"devices": create})
    assert not resources.is_created("devices")
    assert sorted(resources) == ["devices", "options"] and len(resources) == 2
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(resources["devices"])) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len({id(value) for value in seen}) == 1
    assert resources.is_created("devices")
    with pytest.raises(KeyError):
        resources["missing"]
    assert resources.get("missing") is None


def test_node_code_called_by_the_server_sees_the_resources():
    resources = {"folders": "the folders"}
    interrupt = InterruptFlag()
    context = call_with_resources(resources, interrupt, current_context)
    assert context.resources is resources and context.interrupt is interrupt
    assert context.prompt_id == "" and context.node_id == ""
    context.reporter.progress(1, 2)  # a no-op outside a prompt
    assert current_context() is None
