"""A small run of ``tools/load_test.py``: 3 websocket clients queue 5 prompts each at the same moment.

Every prompt completes, each client receives only its own prompts' events, ``/queue`` ends
empty and ``/history`` holds every prompt with its image, and ``/object_info`` keeps answering
while the prompts run.
"""

from __future__ import annotations

import asyncio

from tests.helpers.kiln_server import launch
from tools.load_test import run_load


def test_concurrent_clients_each_get_their_own_events_and_everything_completes(tmp_path):
    kiln = launch(tmp_path, "--preview-method", "none")
    try:
        report = asyncio.run(run_load(kiln.url, clients=3, prompts_per_client=5, pid=kiln.process.pid, timeout=120))
    finally:
        kiln.stop()
    assert report.failures == []
    assert report.total == 15
    assert report.object_info_ms, "/object_info answered while prompts ran"
    assert report.peak_rss_kib is not None and report.peak_rss_kib > 0
