"""End to end over real HTTP and websockets: events in order, routing, files, cache, interrupts.

Protocol: comfy-compat §2 (events and their routing), §1.5 (/view), §5 (PNG chunks), §6.5
(a resubmitted prompt lists every unchanged node in ``execution_cached``).
"""

from __future__ import annotations

import io
import json
import struct
import uuid

import aiohttp
from PIL import Image

from tests.helpers.kiln_server import run_async, ws_connect


def save_graph(color: int, prefix: str) -> dict:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 8, "batch_size": 1, "color": color}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


COUNTDOWN_GRAPH = {
    "1": {"class_type": "ExampleCountdown", "inputs": {"steps": 4, "seconds_per_step": 0.01}},
    "2": {"class_type": "ExampleWidgets", "inputs": {"count": ["1", 0], "strength": 0.5, "text": "t", "enabled": True,
                                                     "mode": "first", "seed": 7}},
    "3": {"class_type": "ExampleShowText", "inputs": {"text": ["2", 0]}},
}


async def submit(session: aiohttp.ClientSession, url: str, body: dict) -> str:
    async with session.post(url + "/prompt", json=body) as response:
        answer = await response.json()
        assert response.status == 200, answer
        return answer["prompt_id"]


def event_types(client, prompt_id: str) -> list[str]:
    return [m["type"] for m in client.events(prompt_id)]


def test_a_prompt_runs_with_events_in_order_saves_a_png_and_is_cached_on_resubmit(kiln_server):
    async def scenario():
        client_id = uuid.uuid4().hex
        workflow = {"nodes": [], "links": [], "version": 0.4, "extra": {"marker": client_id}}
        prompt = save_graph(0x123456, f"e2e_{client_id[:8]}")
        async with aiohttp.ClientSession() as session:
            client = await ws_connect(session, kiln_server, client_id)
            hello = await client.wait_for(lambda m: m["type"] == "status")
            assert hello["data"]["sid"] == client_id
            assert "queue_remaining" in hello["data"]["status"]["exec_info"]

            body = {"prompt": prompt, "client_id": client_id, "extra_data": {"extra_pnginfo": {"workflow": workflow}}}
            prompt_id = await submit(session, kiln_server, body)
            await client.wait_done(prompt_id)
            types = event_types(client, prompt_id)
            assert types[:2] == ["execution_start", "execution_cached"]
            executing = [m["data"]["node"] for m in client.events(prompt_id) if m["type"] == "executing"]
            assert executing == ["1", "2", "3", None]
            assert types.index("executed") < types.index("execution_success") < len(types) - 1
            executed = next(m["data"] for m in client.events(prompt_id) if m["type"] == "executed")
            assert executed["node"] == "3" and executed["display_node"] == "3"
            image_ref = executed["output"]["images"][0]
            assert image_ref["type"] == "output" and image_ref["filename"].endswith(".png")
            assert any(m["type"] == "status" for m in client.messages[1:])

            async with session.get(kiln_server + "/view", params=image_ref) as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "image/png"
                assert image_ref["filename"] in response.headers["Content-Disposition"]
                png = Image.open(io.BytesIO(await response.read()))
                assert png.size == (16, 8)
                assert json.loads(png.text["prompt"]) == prompt
                assert json.loads(png.text["workflow"])["extra"]["marker"] == client_id
                assert png.getpixel((0, 0))[:3] == (0xFF - 0x12, 0xFF - 0x34, 0xFF - 0x56)

            async with session.get(kiln_server + f"/history/{prompt_id}") as response:
                entry = (await response.json())[prompt_id]
            assert entry["status"]["status_str"] == "success"
            assert entry["outputs"]["3"]["images"] == [image_ref]

            again = await submit(session, kiln_server, {"prompt": prompt, "client_id": client_id})
            await client.wait_done(again)
            cached = next(m["data"] for m in client.events(again) if m["type"] == "execution_cached")
            assert sorted(cached["nodes"]) == ["1", "2", "3"]
            assert [m["data"]["node"] for m in client.events(again) if m["type"] == "executing"] == [None]
            await client.socket.close()

    run_async(scenario())


def test_progress_from_a_plugin_reaches_only_the_prompts_client(kiln_server):
    async def scenario():
        owner_id, other_id = uuid.uuid4().hex, uuid.uuid4().hex
        async with aiohttp.ClientSession() as session:
            owner = await ws_connect(session, kiln_server, owner_id)
            other = await ws_connect(session, kiln_server, other_id)
            graph = json.loads(json.dumps(COUNTDOWN_GRAPH))
            graph["1"]["inputs"]["seconds_per_step"] = 0.011  # not cached by an earlier test
            prompt_id = await submit(session, kiln_server, {"prompt": graph, "client_id": owner_id})
            await owner.wait_done(prompt_id)
            progress = [m["data"] for m in owner.events(prompt_id) if m["type"] == "progress"]
            assert [(p["value"], p["max"], p["node"]) for p in progress] == [(i, 4, "1") for i in range(1, 5)]
            states = [m["data"] for m in owner.events(prompt_id) if m["type"] == "progress_state"]
            assert states and states[-1]["nodes"]["1"]["state"] == "finished"
            shown = next(m["data"] for m in owner.events(prompt_id) if m["type"] == "executed")
            assert shown["output"]["text"][0].startswith("count=4 ")

            # the other client sees queue status but none of this prompt's events
            await other.wait_for(lambda m: m["type"] == "status" and m["data"]["status"]["exec_info"]["queue_remaining"] == 0)
            assert event_types(other, prompt_id) == []

    run_async(scenario())


def test_without_a_client_id_progress_is_broadcast_but_executing_is_not(kiln_server):
    async def scenario():
        async with aiohttp.ClientSession() as session:
            watcher = await ws_connect(session, kiln_server)
            graph = json.loads(json.dumps(COUNTDOWN_GRAPH))
            graph["1"]["inputs"]["seconds_per_step"] = 0.02  # not cached by an earlier test
            prompt_id = await submit(session, kiln_server, {"prompt": graph})
            await watcher.wait_for(lambda m: m["type"] == "progress" and m["data"]["value"] == 4)
            await watcher.wait_for(lambda m: m["type"] == "status" and m["data"]["status"]["exec_info"]["queue_remaining"] == 0)
            types = set(event_types(watcher, prompt_id))
            assert "progress" in types
            assert not types & {"executing", "executed", "execution_start"}

    run_async(scenario())


def test_feature_flags_choose_preview_frames_with_or_without_metadata(kiln_server):
    async def scenario():
        modern_id, legacy_id = uuid.uuid4().hex, uuid.uuid4().hex
        async with aiohttp.ClientSession() as session:
            modern = await ws_connect(session, kiln_server, modern_id)
            await modern.socket.send_str(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
            flags = await modern.wait_for(lambda m: m["type"] == "feature_flags")
            assert flags["data"]["supports_preview_metadata"] is True
            assert flags["data"]["max_upload_size"] == 100 * 1024 * 1024

            legacy = await ws_connect(session, kiln_server, legacy_id)
            for client, client_id, steps in ((modern, modern_id, 3), (legacy, legacy_id, 5)):
                prompt = {"1": {"class_type": "FixtureCompatNode", "inputs": {"steps": steps, "input_file": "(none)"}}}
                prompt_id = await submit(session, kiln_server, {"prompt": prompt, "client_id": client_id})
                await client.wait_done(prompt_id)
                custom = [m["data"] for m in client.messages if m["type"] == "fixture.compat"]
                assert custom == [{"node": "1", "steps": steps}]

            (frame,) = modern.binary
            event, header_size = struct.unpack(">II", frame[:8])
            meta = json.loads(frame[8:8 + header_size])
            assert event == 4
            assert meta["node_id"] == "1" and meta["image_type"] == "image/jpeg" and meta["prompt_id"]
            assert Image.open(io.BytesIO(frame[8 + header_size:])).size == (16, 8)

            (frame,) = legacy.binary
            assert struct.unpack(">II", frame[:8]) == (1, 1)
            assert Image.open(io.BytesIO(frame[8:])).format == "JPEG"

            async with session.get(kiln_server + "/fixture/compat") as response:
                assert (await response.json())["prompts_seen"] >= 2  # the plugin's on_prompt hook ran

    run_async(scenario())


def test_interrupt_by_prompt_id_stops_only_that_prompt_and_reconnect_resumes_executing(kiln_server):
    async def scenario():
        client_id = uuid.uuid4().hex
        slow = {"1": {"class_type": "ExampleCountdown", "inputs": {"steps": 400, "seconds_per_step": 0.05}},
                "2": {"class_type": "ExampleWidgets", "inputs": {"count": ["1", 0], "strength": 0.5, "text": "slow",
                                                                 "enabled": True, "mode": "first", "seed": 1}},
                "3": {"class_type": "ExampleShowText", "inputs": {"text": ["2", 0]}}}
        async with aiohttp.ClientSession() as session:
            client = await ws_connect(session, kiln_server, client_id)
            prompt_id = await submit(session, kiln_server, {"prompt": slow, "client_id": client_id})
            await client.wait_for(lambda m: m["type"] == "progress" and m["data"]["prompt_id"] == prompt_id)

            again = await ws_connect(session, kiln_server, client_id)  # replaces the first socket
            await again.wait_for(lambda m: m["type"] == "status")
            resumed = await again.wait_for(lambda m: m["type"] == "executing")
            assert resumed["data"] == {"node": "1"}

            async with session.post(kiln_server + "/interrupt", json={"prompt_id": "someone-else"}) as response:
                assert response.status == 200
            before = sum(1 for m in again.messages if m["type"] == "progress")
            await again.wait_for(lambda m: m["type"] == "progress")
            assert sum(1 for m in again.messages if m["type"] == "progress") > before

            async with session.post(kiln_server + "/api/interrupt", json={"prompt_id": prompt_id}) as response:
                assert response.status == 200
            stopped = await again.wait_for(lambda m: m["type"] == "execution_interrupted")
            assert stopped["data"]["node_id"] == "1" and stopped["data"]["node_type"] == "ExampleCountdown"
            await again.wait_done(prompt_id)
            async with session.get(kiln_server + f"/history/{prompt_id}") as response:
                assert (await response.json())[prompt_id]["status"]["status_str"] == "error"

    run_async(scenario())


def test_interrupt_accepts_an_empty_or_invalid_body(kiln_server):
    async def scenario():
        async with aiohttp.ClientSession() as session:
            for data in (b"", b"{not json"):
                async with session.post(kiln_server + "/interrupt", data=data) as response:
                    assert response.status == 200

    run_async(scenario())


def test_free_is_accepted_and_the_server_keeps_working(kiln_server):
    async def scenario():
        client_id = uuid.uuid4().hex
        async with aiohttp.ClientSession() as session:
            async with session.post(kiln_server + "/free", json={"unload_models": True, "free_memory": True}) as response:
                assert response.status == 200
            client = await ws_connect(session, kiln_server, client_id)
            prompt_id = await submit(session, kiln_server, {"prompt": save_graph(1, "after_free"), "client_id": client_id})
            await client.wait_done(prompt_id)
            cached = next(m["data"] for m in client.events(prompt_id) if m["type"] == "execution_cached")
            assert cached["nodes"] == []

    run_async(scenario())


def test_cache_none_reruns_every_node(start_kiln):
    kiln = start_kiln("--cache-none", plugins=("example",))

    async def scenario():
        client_id = uuid.uuid4().hex
        graph = {"1": {"class_type": "ExampleSplitLines", "inputs": {"text": "x\ny"}},
                 "2": {"class_type": "ExampleShowText", "inputs": {"text": ["1", 0]}}}
        async with aiohttp.ClientSession() as session:
            client = await ws_connect(session, kiln.url, client_id)
            for _ in range(2):
                prompt_id = await submit(session, kiln.url, {"prompt": graph, "client_id": client_id})
                await client.wait_done(prompt_id)
                cached = next(m["data"] for m in client.events(prompt_id) if m["type"] == "execution_cached")
                assert cached["nodes"] == []
                shown = next(m["data"] for m in client.events(prompt_id) if m["type"] == "executed")
                assert shown["output"] == {"text": ["x", "y"]}

    run_async(scenario())


def test_disable_metadata_saves_pngs_without_prompt_or_workflow(start_kiln):
    kiln = start_kiln("--disable-metadata")

    async def scenario():
        client_id = uuid.uuid4().hex
        async with aiohttp.ClientSession() as session:
            client = await ws_connect(session, kiln.url, client_id)
            body = {"prompt": save_graph(7, "plain"), "client_id": client_id,
                    "extra_data": {"extra_pnginfo": {"workflow": {"nodes": []}}}}
            prompt_id = await submit(session, kiln.url, body)
            await client.wait_done(prompt_id)
            executed = next(m["data"] for m in client.events(prompt_id) if m["type"] == "executed")
            async with session.get(kiln.url + "/view", params=executed["output"]["images"][0]) as response:
                png = Image.open(io.BytesIO(await response.read()))
            assert "prompt" not in png.text and "workflow" not in png.text

    run_async(scenario())
