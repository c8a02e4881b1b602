"""The editor in a real browser (headless Chromium) against a real Kiln server.

Each test opens a fresh page (empty localStorage, so the default workflow loads first) and
drives the editor with the mouse and keyboard; ``window.kiln`` tells where nodes and slots
are on screen and what the graph holds, so nothing is clicked blind.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from pathlib import Path

from tests.web.editor_page import node_types, open_editor, type_into_widget, widget_point

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO_MODELS = Path(__file__).resolve().parents[2] / "models"
DEMO_CHECKPOINT = REPO_MODELS / "checkpoints" / "kiln-demo.safetensors"
IMAGE_APPEARS_MS = 90_000  # the first run imports torch, slow on a loaded machine


def open_fixture(page, name: str) -> None:
    workflow = json.loads((FIXTURES / name).read_text())
    page.evaluate("([workflow, name]) => kiln.app.openWorkflow(workflow, name)", [workflow, name])


def add_by_search(page, at: tuple[float, float], query: str) -> int:
    """Double-click empty canvas at page point ``at``, search, press Enter; the new node's id."""
    before = set(page.evaluate("kiln.graph.nodes().map((node) => node.jsonId)"))
    page.mouse.dblclick(*at)
    page.fill("[data-testid=node-search-input]", query)
    page.keyboard.press("Enter")
    (new_id,) = set(page.evaluate("kiln.graph.nodes().map((node) => node.jsonId)")) - before
    return new_id


def drag_link_to_search(page, node_id: int, output: int, to: tuple[float, float], query: str) -> int:
    """Drag from an output dot to empty canvas, pick ``query`` in the type-filtered search."""
    before = set(page.evaluate("kiln.graph.nodes().map((node) => node.jsonId)"))
    x, y = page.evaluate(f"kiln.slotToPage({node_id}, false, {output})")
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move((x + to[0]) / 2, (y + to[1]) / 2, steps=4)
    page.mouse.move(*to, steps=4)
    page.mouse.up()
    page.fill("[data-testid=node-search-input]", query)
    page.keyboard.press("Enter")
    (new_id,) = set(page.evaluate("kiln.graph.nodes().map((node) => node.jsonId)")) - before
    return new_id


def wait_for_output_image(page, node_id: int) -> str:
    page.wait_for_function(
        f"""(() => {{ const s = kiln.editor.status.get("{node_id}");
            return s?.images?.length > 0 && s.images[0].complete && s.images[0].naturalWidth > 0; }})()""",
        timeout=IMAGE_APPEARS_MS)
    return page.evaluate(f'kiln.editor.status.get("{node_id}").images[0].src')


def test_default_workflow_loads_on_first_start(page) -> None:
    assert sorted(node_types(page)) == sorted(["CheckpointLoaderSimple", "CLIPTextEncode", "CLIPTextEncode", "EmptyLatentImage",
                                               "KSampler", "VAEDecode", "SaveImage"])
    texts = page.evaluate("kiln.graph.nodes().filter((n) => n.type === 'CLIPTextEncode').map((n) => n.widgets_values[0])")
    assert "a large red circle in the center on a blue background" in texts


def test_plugin_web_extensions_are_loaded_and_registered(page) -> None:
    page.wait_for_function("kiln.app.extensions.extensions.length > 0")
    assert page.evaluate("kiln.app.extensions.errors") == []
    assert "kiln.example" in page.evaluate("kiln.app.extensions.extensions.map((extension) => extension.name)")


def link_shape(prompt: dict) -> list[tuple]:
    """Every link of an API prompt as (class, input name, upstream class, upstream slot)."""
    return sorted((entry["class_type"], name, prompt[value[0]]["class_type"], value[1])
                  for entry in prompt.values() for name, value in entry["inputs"].items() if isinstance(value, list))


def drag_link(page, origin: int, output: int, target: int, input_slot: int) -> None:
    start = page.evaluate(f"kiln.slotToPage({origin}, false, {output})")
    end = page.evaluate(f"kiln.slotToPage({target}, true, {input_slot})")
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=4)
    page.mouse.move(*end, steps=4)
    page.mouse.up()


def build_default_graph(page) -> dict[str, int]:
    """The default text-to-image graph, built from an empty canvas with search, drags and typing."""
    page.evaluate("kiln.app.clearCanvas(); kiln.editor.camera.scale = 0.7; kiln.editor.camera.offset = [0, 0]; kiln.app.markDirty()")
    ids = {
        "checkpoint": add_by_search(page, (290, 300), "load checkpoint"),
        "positive": add_by_search(page, (520, 90), "clip text encode"),
        "negative": add_by_search(page, (520, 380), "clip text encode"),
        "latent": add_by_search(page, (520, 640), "empty latent image"),
        "sampler": add_by_search(page, (820, 150), "ksampler"),
        "decode": add_by_search(page, (1080, 150), "vae decode"),
        "save": add_by_search(page, (1080, 420), "save image"),
    }
    for origin, output, target, input_slot in [("checkpoint", 0, "sampler", 0), ("checkpoint", 1, "positive", 0),
                                               ("checkpoint", 1, "negative", 0), ("positive", 0, "sampler", 1),
                                               ("negative", 0, "sampler", 2), ("latent", 0, "sampler", 3),
                                               ("sampler", 0, "decode", 0), ("checkpoint", 2, "decode", 1), ("decode", 0, "save", 0)]:
        drag_link(page, ids[origin], output, ids[target], input_slot)
    type_into_widget(page, ids["positive"], "text", "a large red circle in the center on a blue background", multiline=True)
    type_into_widget(page, ids["latent"], "width", "64")
    type_into_widget(page, ids["latent"], "height", "64")
    type_into_widget(page, ids["sampler"], "steps", "6")  # few steps: the test only needs an image
    page.mouse.click(*widget_point(page, ids["sampler"], "cfg", "left"))  # 8.0 -> 7.9 with the ◀ arrow
    return ids


def test_default_graph_built_by_search_and_drag_runs_and_shows_its_image(browser, kiln_server: str, start_kiln, tmp_path) -> None:
    url = kiln_server
    if DEMO_CHECKPOINT.is_file():
        paths = tmp_path / "extra_model_paths.yaml"
        paths.write_text(f"repo:\n  base_path: {REPO_MODELS}\n  checkpoints: checkpoints\n")
        url = start_kiln("--extra-model-paths-config", str(paths)).url
    with open_editor(browser, url) as page:
        ids = build_default_graph(page)
        prompt = page.evaluate("kiln.app.execution.buildPrompt(kiln.editor).prompt")
        template = page.evaluate("async () => (await import('/model/prompt.js'))"
                                 ".workflowToPrompt(await kiln.app.api.template('default'), kiln.app.defs).prompt")
        assert link_shape(prompt) == link_shape(template)
        by_class = {entry["class_type"]: entry["inputs"] for entry in prompt.values()}
        assert by_class["EmptyLatentImage"]["width"] == by_class["EmptyLatentImage"]["height"] == 64
        assert by_class["KSampler"]["steps"] == 6
        assert by_class["KSampler"]["cfg"] == 7.9
        texts = sorted(entry["inputs"]["text"] for entry in prompt.values() if entry["class_type"] == "CLIPTextEncode")
        assert texts == ["", "a large red circle in the center on a blue background"]
        if DEMO_CHECKPOINT.is_file():
            page.evaluate("kiln.previews = 0; kiln.app.api.addEventListener('b_preview', () => kiln.previews++)")
            page.click("[data-testid=queue-button]")
            assert "type=output" in wait_for_output_image(page, ids["save"])
            assert page.evaluate("kiln.previews") > 0
            return
        page.evaluate("kiln.app.clearCanvas()")
        source = add_by_search(page, (420, 300), "empty image")
        invert = drag_link_to_search(page, source, 0, (760, 340), "invert")
        save = drag_link_to_search(page, invert, 0, (1050, 380), "save image")
        assert page.evaluate("kiln.graph.serialize().links.map((l) => l.slice(1, 5))") == [[source, 0, invert, 0], [invert, 0, save, 0]]
        with page.expect_response("**/api/prompt") as answer:
            page.click("[data-testid=queue-button]")
        assert answer.value.status == 200
        assert "type=output" in wait_for_output_image(page, save)


def test_bypassed_and_muted_nodes_are_left_out_of_the_prompt(page) -> None:
    open_fixture(page, "bypass_mute_images.json")
    with page.expect_request("**/api/prompt") as request:
        page.keyboard.press("Control+Enter")
    body = request.value.post_data_json
    prompt = body["prompt"]
    assert sorted(entry["class_type"] for entry in prompt.values()) == ["EmptyImage", "PreviewImage", "SaveImage"]
    empty_id = next(key for key, entry in prompt.items() if entry["class_type"] == "EmptyImage")
    save = next(entry for entry in prompt.values() if entry["class_type"] == "SaveImage")
    preview = next(entry for entry in prompt.values() if entry["class_type"] == "PreviewImage")
    assert save["inputs"] == {"filename_prefix": "bypass_test", "images": [empty_id, 0]}
    assert "images" not in preview["inputs"]
    assert body["extra_data"]["extra_pnginfo"]["workflow"]["nodes"][1]["mode"] == 4
    assert body["client_id"]


def test_multi_node_paste_is_undone_in_one_step(page) -> None:
    before = page.evaluate("JSON.stringify(kiln.graph.serialize())")
    count = len(node_types(page))
    page.click("[data-testid=graph-canvas]", position={"x": 5, "y": 5})
    page.keyboard.press("Control+a")
    page.keyboard.press("Control+c")
    page.mouse.move(700, 600)
    page.keyboard.press("Control+v")
    assert len(node_types(page)) == 2 * count
    assert page.evaluate("kiln.graph.links().length") == 2 * page.evaluate(f"JSON.parse({json.dumps(before)}).links.length")
    page.keyboard.press("Control+z")
    assert page.evaluate("JSON.stringify(kiln.graph.serialize())") == before
    page.keyboard.press("Control+Shift+z")
    assert len(node_types(page)) == 2 * count


def test_png_saved_by_kiln_opens_the_same_graph(page) -> None:
    open_fixture(page, "bypass_mute_images.json")
    page.evaluate("kiln.graph.toggleMode([5], 2)")  # mute PreviewImage too: only SaveImage runs
    # A colour no earlier test used, so SaveImage really runs and writes this workflow.
    page.evaluate("kiln.graph.setWidgetValue(1, 3, Date.now() % 0xffffff)")
    page.keyboard.press("Control+Enter")
    save_id = page.evaluate("kiln.graph.nodes().find((n) => n.type === 'SaveImage').jsonId")
    src = wait_for_output_image(page, save_id)
    sent = page.evaluate("kiln.app.lastPrompt.workflow")
    png = page.evaluate("async (src) => { const bytes = new Uint8Array(await (await fetch(src)).arrayBuffer());"
                        " let text = ''; for (const b of bytes) text += String.fromCharCode(b); return btoa(text); }", src)
    assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"
    tabs = page.evaluate("kiln.app.editors.length")
    page.evaluate("""(data) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "kiln_output.png", { type: "image/png" }));
        const canvas = kiln.app.canvas;
        const rect = canvas.getBoundingClientRect();
        canvas.parentElement.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true,
            clientX: rect.left + 50, clientY: rect.top + 50 }));
    }""", png)
    page.wait_for_function(f"kiln.app.editors.length === {tabs + 1}")
    reopened = page.evaluate("kiln.graph.serialize()")
    for key in ("nodes", "links", "last_node_id", "last_link_id"):
        assert reopened[key] == sent[key], key


def test_unknown_node_type_loads_as_a_placeholder_and_queueing_explains(page) -> None:
    open_fixture(page, "unknown_node.json")
    placeholder = page.evaluate("kiln.graph.nodes().find((n) => n.type === 'NotInstalledUpscaler')")
    assert placeholder["widgets_values"] == [2.5, "lanczos"]
    assert [slot["name"] for slot in placeholder["inputs"]] == ["image", "factor"]
    assert page.evaluate("kiln.graph.def(kiln.graph.node(3)) === undefined")
    saved = page.evaluate("kiln.graph.serialize().nodes.find((n) => n.id === 3)")
    assert saved["plugin_state"] == {"kept": True}
    page.click("[data-testid=queue-button]")
    dialog = page.wait_for_selector("[data-testid=dialog]")
    assert "NotInstalledUpscaler" in dialog.inner_text()


def test_running_node_shows_progress_and_interrupt_stops_it(page) -> None:
    page.evaluate("kiln.app.clearCanvas()")
    countdown, image, save = page.evaluate("""() => {
        const app = kiln.app;
        const countdown = app.addNode("ExampleCountdown", [0, 0]);
        const image = app.addNode("EmptyImage", [350, 0]);
        const save = app.addNode("SaveImage", [700, 0]);
        const graph = kiln.graph;
        graph.setWidgetValue(countdown, 0, 400);
        graph.setWidgetValue(countdown, 1, 0.05);
        graph.connect(countdown, 0, image, graph.ensureWidgetInput(image, "width"));
        graph.connect(image, 0, save, 0);
        return [countdown, image, save];
    }""")
    page.click("[data-testid=queue-button]")
    page.wait_for_function(f"""(() => {{ const s = kiln.editor.status.get("{countdown}");
        return s?.running && s.progress?.value > 0 && s.progress.max === 400; }})()""", timeout=20_000)
    page.click("[data-testid=interrupt-button]")
    page.wait_for_selector("text=Interrupted", timeout=15_000)
    assert page.evaluate(f'kiln.editor.status.get("{countdown}").running') is False
    assert not page.evaluate(f'kiln.editor.status.get("{save}")?.images?.length')


def test_binary_preview_frames_show_on_the_running_node(page) -> None:
    sampler = page.evaluate("kiln.graph.nodes().find((n) => n.type === 'KSampler').jsonId")
    page.evaluate("""async (nodeId) => {
        const socket = kiln.app.api.socket;
        const send = (data) => socket.dispatchEvent(new MessageEvent("message", { data }));
        send(JSON.stringify({ type: "execution_start", data: { prompt_id: "p1" } }));
        send(JSON.stringify({ type: "executing", data: { node: String(nodeId), display_node: String(nodeId), prompt_id: "p1" } }));
        send(JSON.stringify({ type: "progress", data: { value: 3, max: 10, node: String(nodeId), prompt_id: "p1" } }));
        const canvas = Object.assign(document.createElement("canvas"), { width: 8, height: 6 });
        const png = new Uint8Array(await (await new Promise((done) => canvas.toBlob(done, "image/png"))).arrayBuffer());
        // Type 1 (PREVIEW_IMAGE): u32 event, u32 image type (2 = PNG), image bytes (comfy-compat §2.2).
        const frame = new Uint8Array(8 + png.length);
        new DataView(frame.buffer).setUint32(0, 1);
        new DataView(frame.buffer).setUint32(4, 2);
        frame.set(png, 8);
        send(frame.buffer);
    }""", sampler)
    page.wait_for_function(f"""(() => {{ const s = kiln.editor.status.get("{sampler}");
        return s?.running && s.progress?.value === 3 && s.preview?.complete && s.preview.naturalWidth === 8; }})()""")
    page.evaluate("""(nodeId) => {
        const text = new TextEncoder().encode(JSON.stringify({ node_id: String(nodeId), prompt_id: "p1", display_node_id: String(nodeId), image_type: "image/png" }));
        const canvas = Object.assign(document.createElement("canvas"), { width: 5, height: 5 });
        return new Promise((done) => canvas.toBlob(async (blob) => {
            const png = new Uint8Array(await blob.arrayBuffer());
            // Type 4 (PREVIEW_IMAGE_WITH_METADATA): u32 event, u32 JSON length, JSON, image bytes.
            const frame = new Uint8Array(8 + text.length + png.length);
            new DataView(frame.buffer).setUint32(0, 4);
            new DataView(frame.buffer).setUint32(4, text.length);
            frame.set(text, 8);
            frame.set(png, 8 + text.length);
            kiln.app.api.socket.dispatchEvent(new MessageEvent("message", { data: frame.buffer }));
            done();
        }, "image/png"));
    }""", sampler)
    page.wait_for_function(f'kiln.editor.status.get("{sampler}").preview?.naturalWidth === 5')


def test_save_to_the_server_and_open_again(page, kiln_server: str) -> None:
    name = f"browser-test-{int(time.time() * 1000)}"
    page.click("[data-testid=graph-canvas]", position={"x": 5, "y": 5})
    with page.expect_download() as download:
        page.keyboard.press("Control+s")
        page.fill("[data-testid=save-name]", name)
        page.keyboard.press("Enter")
    assert download.value.suggested_filename == f"{name}.json"
    page.wait_for_selector(f"text=Saved workflows/{name}.json")
    with urllib.request.urlopen(kiln_server + "/api/userdata?dir=workflows", timeout=10) as response:
        assert f"{name}.json" in json.load(response)
    saved = page.evaluate("kiln.graph.serialize()")
    page.keyboard.press("Control+o")
    page.click(f"[data-testid=open-list] >> text={name}.json")
    page.wait_for_function("kiln.app.editors.length === 2")
    reopened = page.evaluate("kiln.graph.serialize()")
    assert reopened["nodes"] == saved["nodes"] and reopened["links"] == saved["links"]


def test_batch_count_and_seed_control_after_generate(page) -> None:
    """Each queued prompt of a batch carries the seed before control_after_generate moves it."""
    sent: list[dict] = []

    def accept(route) -> None:
        sent.append(route.request.post_data_json)
        route.fulfill(json={"prompt_id": f"fake-{len(sent)}", "number": len(sent), "node_errors": {}})

    page.route("**/api/prompt", accept)
    sampler = page.evaluate("kiln.graph.nodes().find((n) => n.type === 'KSampler').jsonId")
    page.evaluate(f"kiln.graph.setWidgetValue({sampler}, 0, 42); kiln.graph.setWidgetValue({sampler}, 1, 'increment')")
    page.fill("[data-testid=batch-count]", "3")
    page.click("[data-testid=queue-button]")
    page.wait_for_function(f"kiln.graph.node({sampler}).widgets_values[0] === 45")
    assert [body["prompt"][str(sampler)]["inputs"]["seed"] for body in sent] == [42, 43, 44]
    assert all(body["front"] is False for body in sent)
    page.fill("[data-testid=batch-count]", "1")
    page.click("[data-testid=graph-canvas]", position={"x": 5, "y": 5})
    page.keyboard.press("Control+Shift+Enter")
    page.wait_for_function(f"kiln.graph.node({sampler}).widgets_values[0] === 46")
    assert len(sent) == 4
    assert sent[-1]["front"] is True and sent[-1]["prompt"][str(sampler)]["inputs"]["seed"] == 45


def test_workflow_with_subgraphs_is_sent_for_the_server_to_compile(page) -> None:
    workflow = json.loads((REPO_MODELS.parent / "tests" / "fixtures" / "workflows" / "subgraph_nested.json").read_text())
    page.evaluate("(workflow) => kiln.app.openWorkflow(workflow, 'subgraphs')", workflow)
    with page.expect_request("**/api/prompt") as request:
        page.click("[data-testid=queue-button]")
    body = request.value.post_data_json
    assert "prompt" not in body
    assert body["workflow"]["definitions"] == workflow["definitions"]
    assert body["client_id"]


def test_validation_and_execution_errors_mark_the_failing_node(page) -> None:
    # The session server has no checkpoints, so the default workflow fails validation (400).
    loader = page.evaluate("kiln.graph.nodes().find((n) => n.type === 'CheckpointLoaderSimple').jsonId")
    with page.expect_response("**/api/prompt") as answer:
        page.click("[data-testid=queue-button]")
    assert answer.value.status == 400
    page.wait_for_function(f'kiln.editor.status.get("{loader}")?.error?.includes("kiln-demo.safetensors")')
    page.wait_for_selector("[data-testid=toast-error]")
    sampler = page.evaluate("kiln.graph.nodes().find((n) => n.type === 'KSampler').jsonId")
    page.evaluate("""(nodeId) => kiln.app.api.socket.dispatchEvent(new MessageEvent("message", { data: JSON.stringify({
        type: "execution_error", data: { prompt_id: "p2", node_id: String(nodeId), node_type: "KSampler", executed: [],
        exception_message: "out of memory", exception_type: "torch.OutOfMemoryError", traceback: [] } }) }))""", sampler)
    assert page.evaluate(f'kiln.editor.status.get("{sampler}").error') == "torch.OutOfMemoryError: out of memory"
    page.wait_for_selector("text=Error in KSampler")


def test_image_dropped_on_load_image_is_uploaded_and_shown(page, kiln_server: str) -> None:
    node = page.evaluate("kiln.app.addNodeAtCenter('LoadImage')")
    name = f"dropped-{int(time.time() * 1000)}.png"
    page.evaluate("""async ([nodeId, name]) => {
        const canvas = Object.assign(document.createElement("canvas"), { width: 7, height: 9 });
        const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
        const transfer = new DataTransfer();
        transfer.items.add(new File([blob], name, { type: "image/png" }));
        const node = kiln.graph.node(nodeId);
        const [x, y] = kiln.graphToPage([node.pos[0] + 40, node.pos[1] + 80]);
        kiln.app.canvas.parentElement.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true, clientX: x, clientY: y }));
    }""", [node, name])
    page.wait_for_function(f"kiln.graph.node({node}).widgets_values[0] === {json.dumps(name)}")
    assert page.evaluate(f"kiln.graph.node({node}).widgets_values") == [name, "image"]
    page.wait_for_function(f'kiln.editor.status.get("{node}")?.images?.[0]?.naturalWidth === 7')
    with urllib.request.urlopen(f"{kiln_server}/api/view?filename={name}&type=input", timeout=10) as response:
        assert response.read()[:8] == b"\x89PNG\r\n\x1a\n"


def test_templates_convert_like_the_server_compiler(page) -> None:
    """The editor's graph-to-prompt and the server's UI-workflow compiler agree on every template."""
    results = page.evaluate("""async () => {
        const { workflowToPrompt } = await import("/model/prompt.js");
        const names = (await kiln.app.api.templates()).kiln;
        const compared = [];
        for (const name of names) {
            const workflow = await kiln.app.api.template(name);
            const { prompt, missingTypes } = workflowToPrompt(workflow, kiln.app.defs);
            if (missingTypes.length) continue;  // e.g. LoRA/ControlNet nodes this server lacks
            const server = (await kiln.app.api.postJson("/workflow/compile", workflow)).prompt;
            compared.push([name, prompt, server]);
        }
        return { names, compared };
    }""")
    assert {"default", "text_to_image", "image_to_image", "hires_fix", "inpainting"} <= set(results["names"])
    assert len(results["compared"]) >= 3
    for name, editor_prompt, server_prompt in results["compared"]:
        assert editor_prompt == server_prompt, name
