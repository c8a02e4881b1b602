"""POST /prompt, /queue, /history, /object_info and /workflow/compile shapes (comfy-compat §1.2–§1.4)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.helpers.kiln_server import run_async

SAVE_GRAPH = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
}


async def request(method: str, url: str, **kwargs) -> tuple[int, object]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, **kwargs) as response:
            text = await response.text()
            try:
                import json

                return response.status, json.loads(text) if text else None
            except ValueError:
                return response.status, text


def call(method: str, url: str, **kwargs) -> tuple[int, object]:
    return run_async(request(method, url, **kwargs))


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_get_prompt_reports_queue_remaining(kiln_server, prefix):
    status, body = call("GET", kiln_server + prefix + "/prompt")
    assert status == 200
    assert isinstance(body["exec_info"]["queue_remaining"], int)


def test_missing_prompt_is_a_400_no_prompt(kiln_server):
    status, body = call("POST", kiln_server + "/prompt", json={"client_id": "x"})
    assert status == 400
    assert body == {"error": {"type": "no_prompt", "message": "No prompt provided",
                              "details": "No prompt provided", "extra_info": {}}, "node_errors": {}}


def test_unknown_class_is_a_400_invalid_prompt(kiln_server):
    status, body = call("POST", kiln_server + "/api/prompt", json={"prompt": {"1": {"class_type": "NoSuchNode", "inputs": {}}}})
    assert status == 400
    assert body["error"]["type"] == "invalid_prompt"
    assert "NoSuchNode" in body["error"]["message"]
    assert body["node_errors"] == {}


def test_node_errors_name_the_bad_input_and_the_dependent_output(kiln_server):
    prompt = {**SAVE_GRAPH, "1": {"class_type": "EmptyImage",
                                  "inputs": {"width": 0, "height": 8, "batch_size": 1, "color": 0}}}
    status, body = call("POST", kiln_server + "/prompt", json={"prompt": prompt})
    assert status == 400
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    errors = body["node_errors"]["1"]
    assert errors["class_type"] == "EmptyImage"
    assert errors["dependent_outputs"] == ["3"]
    assert errors["errors"][0]["type"] == "value_smaller_than_min"


@pytest.mark.parametrize("body, fragment", [
    (b"not json", "invalid JSON"),
    (b"[1, 2]", "expected a JSON dict"),
    (b'{"prompt": [1, 2]}', "JSON object of nodes"),
    (b'{"prompt": {}, "extra_data": 5}', "extra_data"),
    (b'{"prompt": {}, "number": "soon"}', "number"),
    (b'{"prompt": {}, "partial_execution_targets": "3"}', "partial_execution_targets"),
])
def test_malformed_bodies_get_a_400_with_a_message(kiln_server, body, fragment):
    status, answer = call("POST", kiln_server + "/prompt", data=body)
    assert status == 400
    assert fragment in str(answer)


def test_a_body_over_the_upload_limit_is_refused_with_413(start_kiln):
    kiln = start_kiln("--max-upload-size", "1")
    status, _ = call("POST", kiln.url + "/prompt", data=b"x" * (2 * 1024 * 1024))
    assert status == 413


def test_queue_pause_move_delete_and_resume(kiln_server):
    assert call("POST", kiln_server + "/queue", json={"pause": True})[0] == 200
    try:
        ids = []
        for seed in range(3):
            graph = {**SAVE_GRAPH, "1": {"class_type": "EmptyImage",
                                         "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": seed}}}
            status, body = call("POST", kiln_server + "/prompt", json={"prompt": graph, "client_id": "queue-test"})
            assert status == 200 and set(body) == {"prompt_id", "number", "node_errors"}
            ids.append(body["prompt_id"])
        status, queue = call("GET", kiln_server + "/api/queue")
        assert [item[1] for item in queue["queue_pending"]] == ids
        assert all(len(item) == 5 for item in queue["queue_pending"])
        assert queue["queue_pending"][0][3]["client_id"] == "queue-test"

        call("POST", kiln_server + "/queue", json={"move": {"prompt_id": ids[2], "to": "front"}})
        _, queue = call("GET", kiln_server + "/queue")
        assert [item[1] for item in queue["queue_pending"]] == [ids[2], ids[0], ids[1]]

        call("POST", kiln_server + "/queue", json={"delete": [ids[0]]})
        _, queue = call("GET", kiln_server + "/queue")
        assert [item[1] for item in queue["queue_pending"]] == [ids[2], ids[1]]

        status, _ = call("POST", kiln_server + "/queue", json={"move": {"prompt_id": "nope", "to": "sideways"}})
        assert status == 400
        call("POST", kiln_server + "/queue", json={"clear": True})
        _, queue = call("GET", kiln_server + "/queue")
        assert queue["queue_pending"] == []
    finally:
        call("POST", kiln_server + "/queue", json={"resume": True})


def test_front_and_number_set_the_priority(kiln_server):
    call("POST", kiln_server + "/queue", json={"pause": True})
    try:
        _, first = call("POST", kiln_server + "/prompt", json={"prompt": SAVE_GRAPH, "number": 500})
        _, second = call("POST", kiln_server + "/prompt", json={"prompt": SAVE_GRAPH, "front": True,
                                                                 "prompt_id": 12345})
        assert first["number"] == 500.0
        assert second["prompt_id"] == "12345"
        assert second["number"] < 0
        _, queue = call("GET", kiln_server + "/queue")
        assert [item[1] for item in queue["queue_pending"]][:1] == ["12345"]
    finally:
        call("POST", kiln_server + "/queue", json={"clear": True})
        call("POST", kiln_server + "/queue", json={"resume": True})


def test_history_of_an_unknown_prompt_is_an_empty_object(kiln_server):
    assert call("GET", kiln_server + "/history/not-a-prompt") == (200, {})
    status, body = call("GET", kiln_server + "/history?max_items=abc")
    assert status == 400


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_object_info_of_one_class_and_of_an_unknown_one(kiln_server, prefix):
    status, body = call("GET", kiln_server + prefix + "/object_info/EmptyImage")
    assert status == 200
    assert list(body) == ["EmptyImage"]
    assert body["EmptyImage"]["output"] == ["IMAGE"]
    assert call("GET", kiln_server + prefix + "/object_info/NoSuchNode") == (200, {})


UI_WORKFLOW = {
    "last_node_id": 2, "last_link_id": 1, "version": 0.4,
    "nodes": [
        {"id": 1, "type": "ExampleSplitLines", "pos": [0, 0], "size": [200, 100], "flags": {}, "order": 0,
         "mode": 0, "inputs": [], "outputs": [{"name": "STRING", "type": "STRING", "links": [1]}],
         "properties": {}, "widgets_values": ["alpha\nbeta"]},
        {"id": 2, "type": "ExampleShowText", "pos": [300, 0], "size": [200, 100], "flags": {}, "order": 1,
         "mode": 0, "inputs": [{"name": "text", "type": "STRING", "link": 1}], "outputs": [],
         "properties": {}, "widgets_values": []},
    ],
    "links": [[1, 1, 0, 2, 0, "STRING"]], "groups": [], "config": {}, "extra": {},
}


def test_workflow_compile_turns_a_ui_workflow_into_an_api_prompt(kiln_server):
    status, body = call("POST", kiln_server + "/workflow/compile", json=UI_WORKFLOW)
    assert status == 200
    assert body["prompt"]["1"]["class_type"] == "ExampleSplitLines"
    assert body["prompt"]["1"]["inputs"]["text"] == "alpha\nbeta"
    assert body["prompt"]["2"]["inputs"]["text"] == ["1", 0]


def test_workflow_compile_refuses_something_that_is_not_a_workflow(kiln_server):
    status, body = call("POST", kiln_server + "/api/workflow/compile", json={"hello": 1})
    assert status == 400
    assert body["error"]["type"] == "invalid_workflow"


def test_post_prompt_accepts_a_ui_workflow_and_keeps_it_for_png_metadata(kiln_server):
    call("POST", kiln_server + "/queue", json={"pause": True})
    try:
        status, body = call("POST", kiln_server + "/prompt", json={"workflow": UI_WORKFLOW, "client_id": "ui"})
        assert status == 200, body
        _, queue = call("GET", kiln_server + "/queue")
        item = next(item for item in queue["queue_pending"] if item[1] == body["prompt_id"])
        assert item[2]["2"]["class_type"] == "ExampleShowText"
        assert item[3]["extra_pnginfo"]["workflow"]["nodes"][0]["id"] == 1
        assert item[4] == ["2"]
    finally:
        call("POST", kiln_server + "/queue", json={"clear": True})
        call("POST", kiln_server + "/queue", json={"resume": True})


def test_partial_execution_targets_keep_only_the_named_outputs(kiln_server):
    graph = {
        "1": {"class_type": "ExampleSplitLines", "inputs": {"text": "a"}},
        "2": {"class_type": "ExampleShowText", "inputs": {"text": ["1", 0]}},
        "3": {"class_type": "ExampleShowText", "inputs": {"text": ["1", 0]}},
    }
    call("POST", kiln_server + "/queue", json={"pause": True})
    try:
        status, body = call("POST", kiln_server + "/prompt", json={"prompt": graph, "partial_execution_targets": ["3"]})
        assert status == 200
        _, queue = call("GET", kiln_server + "/queue")
        item = next(item for item in queue["queue_pending"] if item[1] == body["prompt_id"])
        assert item[4] == ["3"]
    finally:
        call("POST", kiln_server + "/queue", json={"clear": True})
        call("POST", kiln_server + "/queue", json={"resume": True})


def test_history_pages_deletes_and_clears(start_kiln):
    import time

    kiln = start_kiln(plugins=("example",))
    ids = []
    for text in ("a", "b", "c"):
        graph = {"1": {"class_type": "ExampleSplitLines", "inputs": {"text": text}},
                 "2": {"class_type": "ExampleShowText", "inputs": {"text": ["1", 0]}}}
        ids.append(call("POST", kiln.url + "/prompt", json={"prompt": graph})[1]["prompt_id"])
    deadline = time.monotonic() + 30
    while len(call("GET", kiln.url + "/history")[1]) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)

    _, history = call("GET", kiln.url + "/api/history")
    assert list(history) == ids
    entry = history[ids[0]]
    assert entry["prompt"][1] == ids[0] and len(entry["prompt"]) == 5
    assert entry["outputs"]["2"] == {"text": ["a"]}
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    assert entry["meta"]["2"]["node_id"] == "2"
    assert list(call("GET", kiln.url + "/history?max_items=2")[1]) == ids[1:]
    assert list(call("GET", kiln.url + "/history?max_items=1&offset=1")[1]) == ids[1:2]

    assert call("POST", kiln.url + "/history", json={"delete": [ids[0]]})[0] == 200
    assert call("GET", kiln.url + f"/history/{ids[0]}") == (200, {})
    assert call("POST", kiln.url + "/history", json={"delete": "oops"})[0] == 400
    call("POST", kiln.url + "/api/history", json={"clear": True})
    assert call("GET", kiln.url + "/history") == (200, {})
