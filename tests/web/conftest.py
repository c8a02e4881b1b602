"""The browser tests' fixtures: one headless Chromium per test module, a fresh editor page per test."""

from __future__ import annotations

from collections.abc import Iterator

import playwright.sync_api as playwright_api
import pytest

from tests.web.editor_page import CHROMIUM, CHROMIUM_ARGS, open_editor


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, kiln_server: str) -> Iterator[object]:
    with open_editor(browser, kiln_server) as page:
        yield page
