"""Subgraph editing, native reroutes and extension widgets, in a real browser against a real server.

Each test drives the editor with the mouse and keyboard; ``window.kiln`` gives where nodes,
slots, links and reroutes are on screen, and every wait is on a condition of the page.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.kiln_server import launch
from tests.web.editor_page import drag_by, open_editor, type_into_widget

REPO = Path(__file__).resolve().parents[2]
SUBGRAPH_WORKFLOW = REPO / "tests" / "fixtures" / "workflows" / "subgraph_nested.json"
ENCODE_PROMPTS = "3f0c8a52-6b1e-4d7a-9c2f-1a2b3c4d5e6f"
NEGATIVE_ENCODER = "b7e1d2c3-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
CUSTOM_WIDGET_PLUGIN = Path(__file__).resolve().parent / "fixtures" / "plugins" / "custom_widget"


def compile_on_server(url: str, workflow: dict) -> dict:
    """The API prompt the server makes of a UI workflow (``POST /workflow/compile``)."""
    request = urllib.request.Request(url + "/workflow/compile", data=json.dumps(workflow).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["prompt"]


def title_point(page, node_id: int, dx: float = 60) -> list[float]:
    return page.evaluate(f"(() => {{ const n = kiln.graph.node({node_id}); return kiln.graphToPage([n.pos[0] + {dx}, n.pos[1] - 13]); }})()")


def drag_slot_to_slot(page, origin: int, output: int, target: int, input_slot: int) -> None:
    start = page.evaluate(f"kiln.slotToPage({origin}, false, {output})")
    end = page.evaluate(f"kiln.slotToPage({target}, true, {input_slot})")
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=4)
    page.mouse.move(*end, steps=4)
    page.mouse.up()


def definition(workflow: dict, subgraph_id: str) -> dict:
    """A subgraph definition of a saved workflow, searching nested definitions too."""
    pending = list(workflow.get("definitions", {}).get("subgraphs", []))
    while pending:
        candidate = pending.pop()
        if candidate["id"] == subgraph_id:
            return candidate
        pending.extend(candidate.get("definitions", {}).get("subgraphs", []))
    raise KeyError(subgraph_id)


def test_subgraph_is_opened_edited_inside_and_the_queued_prompt_has_the_edit(page, kiln_server: str) -> None:
    workflow = json.loads(SUBGRAPH_WORKFLOW.read_text())
    encode = definition(workflow, ENCODE_PROMPTS)  # the fixture stacks everything at (0, 0): spread it out
    encode["inputNode"]["bounding"] = [-400, 0, 120, 60]
    next(n for n in encode["nodes"] if n["id"] == 7)["pos"] = [0, 350]
    page.evaluate("(workflow) => kiln.app.openWorkflow(workflow, 'subgraphs')", workflow)
    assert page.evaluate("kiln.editor.depth") == 0
    assert page.is_hidden("[data-testid=breadcrumb]")

    page.mouse.dblclick(*title_point(page, 10))
    page.wait_for_function("kiln.editor.depth === 1")
    assert page.inner_text("[data-testid=crumb-1]") == "Encode prompts"
    inner_types = page.evaluate("kiln.graph.nodes().map((n) => n.type)")
    assert sorted(inner_types) == sorted(["CLIPTextEncode", NEGATIVE_ENCODER, "SubgraphInputNode", "SubgraphOutputNode"])

    # A widget inside, with undo and redo on the subgraph's own history.
    type_into_widget(page, 6, "text", "a glass teapot on a table", multiline=True)
    assert page.evaluate("kiln.graph.node(6).widgets_values[0]") == "a glass teapot on a table"
    page.keyboard.press("Control+z")
    assert page.evaluate("kiln.graph.node(6).widgets_values[0]") != "a glass teapot on a table"
    page.keyboard.press("Control+y")
    assert page.evaluate("kiln.graph.node(6).widgets_values[0]") == "a glass teapot on a table"

    # Wire the subgraph's input node to the text encoder again (a new link replaces the old one).
    drag_slot_to_slot(page, -10, 0, 6, 0)
    new_link = page.evaluate("kiln.graph.node(6).inputs[0].link")
    assert new_link not in (None, 1)
    assert page.evaluate(f"kiln.graph.link({new_link}).origin_id") == -10

    # The nested subgraph opens from the context menu; Escape and the breadcrumb go back up.
    page.mouse.click(*title_point(page, 7), button="right")
    page.click("[data-testid=context-menu] >> text=Open subgraph")
    page.wait_for_function("kiln.editor.depth === 2")
    assert page.inner_text("[data-testid=crumb-2]") == "Negative encoder"
    page.keyboard.press("Escape")
    page.wait_for_function("kiln.editor.depth === 1")
    page.click("[data-testid=crumb-0]")
    page.wait_for_function("kiln.editor.depth === 0")
    assert page.is_hidden("[data-testid=breadcrumb]")

    saved = page.evaluate("kiln.editor.serialize()")
    encode = definition(saved, ENCODE_PROMPTS)
    assert next(n for n in encode["nodes"] if n["id"] == 6)["widgets_values"][0] == "a glass teapot on a table"
    assert new_link in encode["inputs"][0]["linkIds"] and 1 not in encode["inputs"][0]["linkIds"]
    assert definition(saved, NEGATIVE_ENCODER) == definition(workflow, NEGATIVE_ENCODER)
    assert saved["id"] == workflow["id"] and saved["nodes"] == workflow["nodes"]

    with page.expect_request("**/api/prompt") as request:
        page.click("[data-testid=queue-button]")
    sent = request.value.post_data_json["workflow"]
    prompt = compile_on_server(kiln_server, sent)
    assert prompt["10:6"]["inputs"]["text"] == "a glass teapot on a table"
    assert prompt["10:6"]["inputs"]["clip"] == ["4", 1]
    assert prompt["10:7:1"]["inputs"]["text"] == "lowres, bad anatomy"


def link_point(page, link_id: int) -> list[float]:
    """Page point on the first segment of a drawn link (the renderer's curve), clear of nodes."""
    return page.evaluate("""async (linkId) => {
        const { linkPoints, curveControls } = await import("/view/link_geometry.js");
        const { hitTest, layoutFor, linkNear } = await import("/interaction/hittest.js");
        const points = linkPoints(kiln.graph, kiln.graph.link(linkId), layoutFor(kiln.editor));
        const [a, b] = [points[0], points[1]];
        const [c1, c2] = curveControls(a, b);
        for (const t of [0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8]) {
            const u = 1 - t;
            const at = (i) => u * u * u * a[i] + 3 * u * u * t * c1[i] + 3 * u * t * t * c2[i] + t * t * t * b[i];
            const point = [at(0), at(1)];
            if (hitTest(kiln.editor, point).kind === "empty" && linkNear(kiln.editor, point)?.link.jsonId === linkId) return kiln.graphToPage(point);
        }
        throw new Error(`link ${linkId} runs under nodes all along`);
    }""", link_id)


def test_native_reroute_is_added_moved_deleted_and_saved_in_both_schemas(page) -> None:
    page.evaluate("kiln.editor.camera.scale = 1; kiln.editor.camera.offset = [0, 0]; kiln.app.markDirty()")
    page.keyboard.press(".")
    link_id = page.evaluate("""(() => { const g = kiln.graph;
        return g.links().find((l) => g.node(l.origin_id).type === 'CheckpointLoaderSimple' && g.node(l.target_id).type === 'KSampler').jsonId; })()""")
    prompt_before = page.evaluate("kiln.app.execution.buildPrompt(kiln.editor).prompt")

    point = link_point(page, link_id)
    page.keyboard.down("Alt")
    page.mouse.click(*point)
    page.keyboard.up("Alt")
    reroutes = page.evaluate("kiln.graph.reroutes().map((r) => ({ id: r.jsonId, pos: r.pos, linkIds: r.linkIds }))")
    assert len(reroutes) == 1 and reroutes[0]["linkIds"] == [link_id]
    reroute_id = reroutes[0]["id"]
    assert page.evaluate(f"kiln.graph.link({link_id}).parentId") == reroute_id
    assert page.evaluate("kiln.app.execution.buildPrompt(kiln.editor).prompt") == prompt_before

    scale = page.evaluate("kiln.editor.camera.scale")
    start = page.evaluate(f"kiln.graphToPage(kiln.graph.reroute({reroute_id}).pos)")
    drag_by(page, start, 40, 25)
    moved = page.evaluate(f"kiln.graph.reroute({reroute_id}).pos")
    assert moved == pytest.approx([reroutes[0]["pos"][0] + 40 / scale, reroutes[0]["pos"][1] + 25 / scale], abs=0.01)

    saved = page.evaluate("kiln.editor.serialize()")
    assert saved["version"] == 0.4
    assert saved["extra"]["reroutes"] == [{"id": reroute_id, "pos": moved, "linkIds": [link_id]}]
    assert saved["extra"]["linkExtensions"] == [{"id": link_id, "parentId": reroute_id}]
    v1 = page.evaluate("async () => (await import('/model/workflow.js')).writeWorkflowV1(kiln.graph.parts())")
    assert v1["reroutes"] == [{"id": reroute_id, "pos": moved, "linkIds": [link_id]}]
    assert next(link for link in v1["links"] if link["id"] == link_id)["parentId"] == reroute_id
    assert v1["state"]["lastRerouteId"] == reroute_id
    for schema in (saved, v1):
        reopened = page.evaluate("(w) => { const e = kiln.app.openWorkflow(w, 'again'); return e.graph.reroutes().map((r) => r.pos); }", schema)
        assert reopened == [moved]
        assert page.evaluate(f"kiln.graph.link({link_id}).parentId") == reroute_id
        page.evaluate("kiln.app.closeTab(kiln.app.activeIndex)")

    page.keyboard.press("Control+z")
    assert page.evaluate(f"kiln.graph.reroute({reroute_id}).pos") == reroutes[0]["pos"]
    page.keyboard.press("Control+y")
    assert page.evaluate(f"kiln.graph.reroute({reroute_id}).pos") == moved

    page.mouse.click(*page.evaluate(f"kiln.graphToPage(kiln.graph.reroute({reroute_id}).pos)"))
    page.keyboard.press("Delete")
    assert page.evaluate("kiln.graph.reroutes().length") == 0
    assert page.evaluate(f"kiln.graph.link({link_id}).parentId") is None
    assert "reroutes" not in page.evaluate("kiln.editor.serialize().extra")
    page.keyboard.press("Control+z")
    assert page.evaluate(f"kiln.graph.link({link_id}).parentId") == reroute_id


def test_link_context_menu_adds_a_reroute(page) -> None:
    page.keyboard.press(".")
    link_id = page.evaluate("kiln.graph.links()[0].jsonId")
    page.mouse.click(*link_point(page, link_id), button="right")
    page.click("[data-testid=context-menu] >> text=Add reroute")
    assert page.evaluate("kiln.graph.reroutes().map((r) => r.linkIds)") == [[link_id]]
    assert page.evaluate(f"kiln.graph.link({link_id}).parentId") == page.evaluate("kiln.graph.reroutes()[0].jsonId")


def test_extension_custom_widget_is_given_to_inputs_of_its_type(browser, tmp_path) -> None:  # noqa: F811
    base_dir = tmp_path / "base"
    shutil.copytree(CUSTOM_WIDGET_PLUGIN, base_dir / "custom_nodes" / "custom_widget")
    kiln = launch(base_dir)
    try:
        with urllib.request.urlopen(kiln.url + "/extensions", timeout=10) as response:
            assert any(url.endswith("/tint_widget.js") for url in json.load(response))
        with open_editor(browser, kiln.url) as page:
            assert page.evaluate("kiln.app.extensions.errors") == []
            node = page.evaluate("kiln.app.addNodeAtCenter('KilnTestTint')")
            widgets = page.evaluate(f"kiln.graph.widgets(kiln.graph.node({node})).map((w) => [w.name, w.kind])")
            assert widgets == [["tint", "CUSTOM"], ["strength", "FLOAT"]]
            assert page.evaluate(f"kiln.graph.node({node}).widgets_values") == ["#ff8800", 0.5]
            assert page.evaluate(f"kiln.graph.node({node}).inputs.map((i) => i.widget?.name)") == ["tint", "strength"]
            page.wait_for_function("window.kilnTestTintDraws > 0")  # the extension's own draw ran

            row = page.evaluate(f"""async () => {{
                const {{ layoutNode }} = await import("/view/layout.js");
                const row = layoutNode(kiln.graph, kiln.graph.node({node})).widgets[0];
                return kiln.graphToPage([row.x + row.w / 2, row.y + row.h / 2]); }}""")
            page.mouse.click(*row)
            page.fill("[data-testid=widget-editor]", "#00ff00")
            page.keyboard.press("Enter")
            assert page.evaluate(f"kiln.graph.node({node}).widgets_values") == ["#00ff00", 0.5]
            prompt = page.evaluate("kiln.app.execution.buildPrompt(kiln.editor).prompt")
            assert prompt[str(node)]["inputs"] == {"tint": "#00ff00", "strength": 0.5}
    finally:
        kiln.stop()
