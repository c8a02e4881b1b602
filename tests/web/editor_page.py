"""Driving the editor in headless Chromium: opening a page and typing into a node's widget.

``window.kiln`` (set by ``web/main.js``) tells where nodes, slots and widgets are on screen, so
nothing is clicked blind. The ``browser`` and ``page`` fixtures built on this are in ``conftest.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 820}


@contextlib.contextmanager
def open_editor(browser, url: str, **context_options) -> Iterator[object]:
    """A fresh browser context (empty localStorage) on the editor at ``url``; fails on page errors."""
    context = browser.new_context(viewport=VIEWPORT, **context_options)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url + "/")
    assert page.evaluate("window.kiln.ready") is True
    yield page
    context.close()
    assert errors == [], f"uncaught errors in the page: {errors}"


def drag_by(page, start: list[float], dx: float, dy: float, steps: int = 5) -> None:
    """Press at page point ``start``, move by (``dx``, ``dy``) in ``steps`` moves, release."""
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + dx, start[1] + dy, steps=steps)
    page.mouse.up()


def node_types(page) -> list[str]:
    return page.evaluate("kiln.graph.nodes().map((node) => node.type)")


def widget_point(page, node_id: int, widget_name: str, where: str = "centre") -> tuple[float, float]:
    """Page point of a widget row: its centre, or its ``left``/``right`` arrow."""
    return tuple(page.evaluate("""async ([nodeId, name, where]) => {
        const { layoutNode } = await import("/view/layout.js");
        const graph = kiln.graph;
        const node = graph.node(nodeId);
        const row = layoutNode(graph, node, Boolean(kiln.editor.status.get(String(nodeId))?.images?.length))
            .widgets.find((candidate) => candidate.widget.name === name);
        const x = where === "left" ? row.x + 8 : where === "right" ? row.x + row.w - 8 : row.x + row.w / 2;
        return kiln.graphToPage([x, row.y + row.h / 2]);
    }""", [node_id, widget_name, where]))


def type_into_widget(page, node_id: int, widget_name: str, text: str, multiline: bool = False) -> None:
    page.mouse.click(*widget_point(page, node_id, widget_name))
    page.fill("[data-testid=widget-editor]", text)
    page.keyboard.press("Control+Enter" if multiline else "Enter")


