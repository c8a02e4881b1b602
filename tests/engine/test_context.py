"""NodeContext, the progress reporter and the interrupt flag (engine/context.py)."""

from __future__ import annotations

import asyncio

import pytest

from engine.context import InterruptFlag, Interrupted, NodeContext, ProgressReporter, current_context, use_context


def make_context(node_id: str, reports: list, flag: InterruptFlag) -> NodeContext:
    reporter = ProgressReporter(lambda value, total, preview: reports.append((value, total, preview)), flag)
    return NodeContext(prompt_id="p", node_id=node_id, display_node_id=node_id, reporter=reporter, interrupt=flag)


def test_interrupt_flag_check_raises_once_and_clears():
    flag = InterruptFlag()
    flag.check()
    flag.set()
    assert flag.is_set()
    with pytest.raises(Interrupted):
        flag.check()
    assert not flag.is_set()
    # A node's `except OSError:` must not swallow an interrupt.
    assert not issubclass(Interrupted, OSError)


def test_reporter_reports_and_checks_the_interrupt():
    reports: list = []
    flag = InterruptFlag()
    context = make_context("1", reports, flag)
    context.reporter.progress(1, 4)
    flag.set()
    with pytest.raises(Interrupted):
        context.reporter.progress(2, 4, ("PNG", "img", 256))
    assert reports == [(1, 4, None)]


def test_use_context_sets_and_restores():
    flag = InterruptFlag()
    assert current_context() is None
    with use_context(make_context("outer", [], flag)):
        with use_context(make_context("inner", [], flag)):
            assert current_context().node_id == "inner"
        assert current_context().node_id == "outer"
    assert current_context() is None


def test_async_tasks_see_the_context_they_were_created_in():
    flag = InterruptFlag()

    async def node_id_later() -> str:
        await asyncio.sleep(0)
        return current_context().node_id

    async def main() -> list[str]:
        tasks = []
        for node_id in ("a", "b"):
            with use_context(make_context(node_id, [], flag)):
                tasks.append(asyncio.ensure_future(node_id_later()))
        return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == ["a", "b"]
