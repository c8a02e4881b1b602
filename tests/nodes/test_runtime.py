"""nodes.runtime hands node code the resources of the node context it runs in."""

from __future__ import annotations

import pytest

from engine.context import Interrupted
from nodes import runtime


class TestInsideANodeContext:
    def test_folders_and_options_come_from_the_context_resources(self, node_context, folders, server_options):
        assert runtime.folders() is folders
        assert runtime.options() is server_options

    def test_missing_options_mean_all_defaults(self, node_context):
        node_context.resources = {"folders": object()}
        assert runtime.options() == {}

    def test_devices_come_from_the_context_and_their_absence_is_named(self, node_context):
        with pytest.raises(runtime.NoNodeContext, match="'devices'"):
            runtime.devices()
        device_manager = object()
        node_context.resources = dict(node_context.resources, devices=device_manager)
        assert runtime.devices() is device_manager

    def test_progress_reaches_the_reporter(self, node_context, progress_reports):
        runtime.progress(3, 10)
        assert progress_reports == [(3, 10, None)]

    def test_progress_and_check_stop_an_interrupted_node(self, node_context, progress_reports):
        node_context.interrupt.set()
        with pytest.raises(Interrupted):
            runtime.progress(1, 10)
        assert progress_reports == []
        node_context.interrupt.set()
        with pytest.raises(Interrupted):
            runtime.check_interrupted()


class TestOutsideANodeContext:
    def test_resources_are_a_clear_error(self):
        for helper in (runtime.folders, runtime.options, runtime.devices):
            with pytest.raises(runtime.NoNodeContext, match="no node context is active"):
                helper()

    def test_progress_and_interrupt_checks_do_nothing(self):
        runtime.progress(1, 2)
        runtime.check_interrupted()
