"""Moving around the canvas in a real browser: pan, zoom, box select, pinch on trackpads and
touch screens, and pinned nodes that stay where they are."""

from __future__ import annotations

import pytest

from tests.web.editor_page import drag_by, node_types, open_editor


def test_pan_zoom_box_select_move_and_delete(page) -> None:
    camera = "[kiln.editor.camera.scale, ...kiln.editor.camera.offset]"
    page.evaluate("kiln.editor.camera.scale = 1; kiln.editor.camera.offset = [0, 0]; kiln.app.markDirty()")
    anchor = (700, 500)
    under_cursor = page.evaluate(f"kiln.screenToGraph([{anchor[0]} - kiln.app.canvas.getBoundingClientRect().left, {anchor[1]} - kiln.app.canvas.getBoundingClientRect().top])")
    page.mouse.move(*anchor)
    page.mouse.wheel(0, -300)
    page.wait_for_function("kiln.editor.camera.scale > 1")
    after = page.evaluate(f"kiln.screenToGraph([{anchor[0]} - kiln.app.canvas.getBoundingClientRect().left, {anchor[1]} - kiln.app.canvas.getBoundingClientRect().top])")
    assert abs(after[0] - under_cursor[0]) < 1e-6 and abs(after[1] - under_cursor[1]) < 1e-6
    page.keyboard.press(".")  # fit view
    scale, x0, y0 = page.evaluate(camera)
    empty = page.evaluate("(() => { const r = kiln.app.canvas.getBoundingClientRect(); return [r.left + 12, r.top + 12]; })()")
    page.mouse.move(*empty)
    page.mouse.down()
    page.mouse.move(empty[0] + 60, empty[1] + 30, steps=3)
    page.mouse.up()
    _, x1, y1 = page.evaluate(camera)
    assert (round((x1 - x0) * scale), round((y1 - y0) * scale)) == (60, 30)
    page.mouse.move(*empty)
    page.mouse.down(button="middle")
    page.mouse.move(empty[0] - 60, empty[1] - 30, steps=3)
    page.mouse.up(button="middle")
    assert page.evaluate(camera)[1:] == pytest.approx([x0, y0])

    # Ctrl-drag a box around the two text encoders only.
    boxes = page.evaluate("""kiln.graph.nodes().filter((n) => n.type === 'CLIPTextEncode').map((n) => {
        const top = kiln.graphToPage([n.pos[0] - 10, n.pos[1] - 40]);
        const bottom = kiln.graphToPage([n.pos[0] + n.size[0] + 10, n.pos[1] + n.size[1] + 10]);
        return [...top, ...bottom]; })""")
    left, top = min(b[0] for b in boxes), min(b[1] for b in boxes)
    right, bottom = max(b[2] for b in boxes), max(b[3] for b in boxes)
    page.keyboard.down("Control")
    page.mouse.move(left, top)
    page.mouse.down()
    page.mouse.move(right, bottom, steps=5)
    page.mouse.up()
    page.keyboard.up("Control")
    selected = page.evaluate("kiln.app.selectedNodeIds().map((id) => kiln.graph.node(id).type)")
    assert selected == ["CLIPTextEncode", "CLIPTextEncode"]

    # Drag one of them by its title: both move, and one undo puts both back.
    before = page.evaluate("kiln.graph.nodes().filter((n) => n.type === 'CLIPTextEncode').map((n) => n.pos)")
    first = page.evaluate("kiln.graph.nodes().find((n) => n.type === 'CLIPTextEncode')")
    title = page.evaluate(f"kiln.graphToPage([{first['pos'][0]} + 80, {first['pos'][1]} - 12])")
    drag_by(page, title, 40, 20, steps=6)
    moved = page.evaluate("kiln.graph.nodes().filter((n) => n.type === 'CLIPTextEncode').map((n) => n.pos)")
    assert all(m == pytest.approx([b[0] + 40 / scale, b[1] + 20 / scale], abs=0.01) for m, b in zip(moved, before))
    page.keyboard.press("Control+z")
    assert page.evaluate("kiln.graph.nodes().filter((n) => n.type === 'CLIPTextEncode').map((n) => n.pos)") == before

    page.keyboard.press("Delete")
    assert "CLIPTextEncode" not in node_types(page)
    page.keyboard.press("Control+z")
    assert node_types(page).count("CLIPTextEncode") == 2


def graph_point_at(page, at: tuple[float, float]) -> list[float]:
    """The graph point under page point ``at``."""
    return page.evaluate("([x, y]) => { const r = kiln.app.canvas.getBoundingClientRect(); return kiln.screenToGraph([x - r.left, y - r.top]); }", list(at))


def test_trackpad_pinch_zooms_gently_at_the_cursor_and_keeps_the_page_unzoomed(page) -> None:
    page.evaluate("kiln.editor.camera.scale = 1; kiln.editor.camera.offset = [0, 0]; kiln.app.markDirty()")
    anchor = (640, 420)
    under_cursor = graph_point_at(page, anchor)
    not_prevented = page.evaluate("""([x, y, deltaY]) => kiln.app.canvas.dispatchEvent(new WheelEvent("wheel",
        { clientX: x, clientY: y, deltaY, ctrlKey: true, bubbles: true, cancelable: true }))""", [*anchor, -4])
    assert not_prevented is False  # the browser must not zoom the page
    pinched = page.evaluate("kiln.editor.camera.scale")
    assert 1 < pinched < 1.1
    assert graph_point_at(page, anchor) == pytest.approx(under_cursor, abs=1e-6)
    page.evaluate("""([x, y]) => kiln.app.canvas.dispatchEvent(new WheelEvent("wheel",
        { clientX: x, clientY: y, deltaY: -100, bubbles: true, cancelable: true }))""", list(anchor))
    assert page.evaluate("kiln.editor.camera.scale") / pinched > 1.1  # a wheel notch zooms more


def test_two_finger_touch_pinch_zooms_around_the_fingers(browser, kiln_server: str) -> None:
    with open_editor(browser, kiln_server, has_touch=True) as page:
        page.evaluate("kiln.editor.camera.scale = 1; kiln.editor.camera.offset = [0, 0]; kiln.app.markDirty()")
        nodes_before = page.evaluate("kiln.graph.nodes().map((n) => n.pos)")
        middle = (700, 60)  # empty canvas above the default graph
        under_fingers = graph_point_at(page, middle)
        cdp = page.context.new_cdp_session(page)

        def touch(kind: str, spread: float) -> None:
            points = [] if kind == "touchEnd" else [{"x": middle[0] - spread, "y": middle[1], "id": 0}, {"x": middle[0] + spread, "y": middle[1], "id": 1}]
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

        touch("touchStart", 50)
        for spread in (60, 75, 100):
            touch("touchMove", spread)
        touch("touchEnd", 0)
        assert page.evaluate("kiln.editor.camera.scale") == pytest.approx(2, rel=1e-3)
        assert graph_point_at(page, middle) == pytest.approx(under_fingers, abs=1e-3)
        assert page.evaluate("kiln.graph.nodes().map((n) => n.pos)") == nodes_before


def test_pinned_node_cannot_be_dragged_or_resized_until_unpinned(page) -> None:
    page.keyboard.press(".")
    sampler = "kiln.graph.nodes().find((n) => n.type === 'KSampler')"
    node = page.evaluate(sampler)
    title = page.evaluate(f"kiln.graphToPage([{node['pos'][0]} + 80, {node['pos'][1]} - 12])")
    corner = page.evaluate(f"kiln.graphToPage([{node['pos'][0]} + {node['size'][0]} - 4, {node['pos'][1]} + {node['size'][1]} - 4])")

    def drag(start: list[float], by: tuple[float, float]) -> None:
        page.mouse.move(*start)
        page.mouse.down()
        page.mouse.move(start[0] + by[0], start[1] + by[1], steps=5)
        page.mouse.up()

    page.mouse.click(*title)
    page.keyboard.press("p")
    assert page.evaluate(f"{sampler}.flags.pinned") is True
    assert page.evaluate("kiln.app.selectedNodeIds().length") == 1
    drag(title, (60, 40))
    drag(corner, (50, 50))
    pinned = page.evaluate(sampler)
    assert (pinned["pos"], pinned["size"]) == (node["pos"], node["size"])
    assert page.evaluate("kiln.app.selectedNodeIds().map((id) => kiln.graph.node(id).type)") == ["KSampler"]
    saved = page.evaluate("kiln.graph.serialize().nodes.find((n) => n.type === 'KSampler').flags")
    assert saved.get("pinned") is True

    page.keyboard.press("p")
    assert "pinned" not in page.evaluate(f"{sampler}.flags")
    drag(title, (60, 40))
    assert page.evaluate(f"{sampler}.pos") != node["pos"]
