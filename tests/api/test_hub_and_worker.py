"""The websocket hub's frames and the worker's event routing, in-process (comfy-compat §2)."""

from __future__ import annotations

import asyncio
import io
import json
import struct

from PIL import Image

from api.hub import RunningState, WebSocketHub, encode_preview, preview_frames, text_frame
from api.worker import ClientEventSink, PromptWorker, crash_record


def test_preview_frames_have_the_binary_headers_of_the_protocol():
    image_format, data = encode_preview(("JPEG", Image.new("RGB", (300, 100), "blue"), 150))
    assert image_format == "JPEG"
    assert Image.open(io.BytesIO(data)).size == (150, 50)  # contained in max_size, aspect kept
    plain, with_meta = preview_frames(image_format, data, {"node_id": "3", "prompt_id": "p"})
    assert struct.unpack(">II", plain[:8]) == (1, 1) and plain[8:] == data
    event, size = struct.unpack(">II", with_meta[:8])
    assert event == 4
    assert json.loads(with_meta[8:8 + size]) == {"node_id": "3", "prompt_id": "p", "image_type": "image/jpeg"}
    assert with_meta[8 + size:] == data


def test_png_previews_use_image_type_two():
    image_format, data = encode_preview(("PNG", Image.new("RGBA", (4, 4)), None))
    plain, with_meta = preview_frames(image_format, data, {})
    assert struct.unpack(">II", plain[:8]) == (1, 2)
    assert b'"image/png"' in with_meta


def test_text_frames_carry_the_node_id_and_optionally_the_prompt_id():
    frame = text_frame("12", "hello")
    assert struct.unpack(">II", frame[:8]) == (3, 2) and frame[8:] == b"12hello"
    framed = text_frame("12", "hi", "pid")
    assert struct.unpack(">II", framed[:8]) == (3, 3) and framed[8:11] == b"pid"


class RecordingHub(WebSocketHub):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple] = []

    def send_sync(self, event, data, sid=None):
        self.sent.append((event, data, sid))


def test_events_go_to_the_prompts_client_and_track_the_running_node():
    hub = RecordingHub()
    sink = ClientEventSink(hub, "client-1")
    sink.send("executing", {"node": "4", "prompt_id": "p"})
    sink.send("progress", {"value": 1, "max": 2, "node": "4", "prompt_id": "p"})
    assert [sid for _, _, sid in hub.sent] == ["client-1", "client-1"]
    assert hub.running.last_node_id == "4"


def test_without_a_client_only_progress_and_interrupts_are_broadcast():
    hub = RecordingHub()
    sink = ClientEventSink(hub, None)
    for event in ("execution_start", "executing", "executed", "progress", "progress_state",
                  "execution_interrupted", "execution_success"):
        sink.send(event, {"prompt_id": "p"})
    assert [(event, sid) for event, _, sid in hub.sent] == [
        ("progress", None), ("progress_state", None), ("execution_interrupted", None)]


def test_send_sync_from_another_thread_reaches_the_socket_in_order():
    class FakeSocket:
        def __init__(self) -> None:
            self.frames: list = []

        async def send_str(self, text):
            self.frames.append(json.loads(text))

        async def send_bytes(self, data):
            self.frames.append(data)

    async def scenario():
        hub = WebSocketHub()
        hub.attach(asyncio.get_running_loop())
        socket, bystander = FakeSocket(), FakeSocket()
        hub.add_socket("a", socket)
        hub.add_socket("b", bystander)
        publisher = asyncio.create_task(hub.publish_loop())

        def worker_thread():
            hub.send_sync("one", {"n": 1}, "a")
            hub.send_sync("two", {"n": 2}, None)
            hub.send_binary(b"\x00\x00\x00\x09xyz", "a")

        await asyncio.to_thread(worker_thread)
        for _ in range(100):
            if len(socket.frames) == 3:
                break
            await asyncio.sleep(0.01)
        publisher.cancel()
        assert socket.frames == [{"type": "one", "data": {"n": 1}}, {"type": "two", "data": {"n": 2}},
                                 b"\x00\x00\x00\x09xyz"]
        assert bystander.frames == [{"type": "two", "data": {"n": 2}}]

    asyncio.run(scenario())


class FakeQueue:
    def __init__(self, items):
        self.items = list(items)
        self.done: list[tuple] = []

    def get(self, timeout=None):
        return self.items.pop(0) if self.items else None

    def task_done(self, prompt_id, result):
        self.done.append((prompt_id, result))


class RaisingExecutor:
    def __init__(self):
        self.resets = 0

    def execute(self, *args):
        raise RuntimeError("executor bug")

    def reset(self):
        self.resets += 1


def test_a_crashing_executor_is_recorded_as_an_error_and_the_worker_goes_on():
    from engine.context import InterruptFlag

    hub = RecordingHub()
    queue = FakeQueue([(0, "p1", {}, {"client_id": "c"}, ["1"])])
    worker = PromptWorker(queue, RaisingExecutor(), hub, InterruptFlag(), {})
    worker.run_item(queue.get())
    (prompt_id, result), = queue.done
    assert prompt_id == "p1" and result["status_str"] == "error"
    assert result["messages"][0][1]["exception_message"] == "executor bug"
    assert hub.sent[-1] == ("executing", {"node": None, "prompt_id": "p1"}, "c")
    assert hub.running == RunningState()


def test_free_memory_resets_the_executor_between_prompts():
    from engine.context import InterruptFlag

    executor = RaisingExecutor()
    worker = PromptWorker(FakeQueue([]), executor, RecordingHub(), InterruptFlag(), {})
    worker.request_free(unload_models=True, free_memory=False)
    worker._handle_free()
    assert executor.resets == 0
    worker.request_free(unload_models=False, free_memory=True)
    worker._handle_free()
    assert executor.resets == 1


def test_crash_records_name_the_exception_type():
    record = crash_record("p", KeyError("x"))
    assert record["messages"][0][0] == "execution_error"
    assert record["messages"][0][1]["exception_type"] == "KeyError"


def test_prompt_server_compat_sends_text_and_binary_events_through_the_hub():
    from api.prompt_server import BinaryEventTypes, PromptServer

    class BinaryRecordingHub(RecordingHub):
        def __init__(self) -> None:
            super().__init__()
            self.frames: list[tuple] = []
            self.texts: list[tuple] = []

        def send_binary(self, frame, sid=None):
            self.frames.append((frame, sid))

        def send_text(self, node_id, text, prompt_id, sid=None):
            self.texts.append((node_id, text, prompt_id, sid))

    hub = BinaryRecordingHub()
    server = PromptServer(hub)
    assert PromptServer.instance is server
    hub.running = RunningState(client_id="c", prompt_id="p", last_node_id="5")
    assert (server.client_id, server.last_node_id) == ("c", "5")
    server.send_sync("my.event", {"x": 1}, server.client_id)
    server.send_sync(BinaryEventTypes.PREVIEW_IMAGE, ("PNG", b"png-bytes"))
    server.send_progress_text("working", 5)
    assert hub.sent == [("my.event", {"x": 1}, "c")]
    assert hub.frames == [(struct.pack(">II", 1, 2) + b"png-bytes", None)]
    assert hub.texts == [("5", "working", "p", "c")]
    assert server.trigger_on_prompt({"a": 1}) == {"a": 1}
    server.add_on_prompt_handler(lambda body: {**body, "b": 2})
    server.add_on_prompt_handler(lambda body: 1 / 0)  # a failing hook is skipped
    assert server.trigger_on_prompt({"a": 1}) == {"a": 1, "b": 2}


class PickyQueue(FakeQueue):
    """Refuses results that are not JSON, as the SQLite history does."""

    def task_done(self, prompt_id, result):
        json.dumps(result)
        super().task_done(prompt_id, result)


class UnserializableExecutor(RaisingExecutor):
    def execute(self, *args):
        return {"status_str": "success", "completed": True, "messages": [],
                "outputs": {"1": {"thing": object()}}, "meta": {}}


def test_a_result_that_cannot_be_stored_becomes_an_error_entry():
    from engine.context import InterruptFlag

    queue = PickyQueue([])
    worker = PromptWorker(queue, UnserializableExecutor(), RecordingHub(), InterruptFlag(), {})
    worker.run_item((0, "p2", {}, {}, ["1"]))
    (prompt_id, result), = queue.done
    assert prompt_id == "p2" and result["status_str"] == "error"
    assert "not JSON serializable" in result["messages"][0][1]["exception_message"]


def test_a_preview_that_cannot_be_encoded_is_dropped():
    hub = WebSocketHub()
    hub.loop = asyncio.new_event_loop()
    try:
        sink = ClientEventSink(hub, "c")
        sink.send_preview(("JPEG", "not an image", 16), {"node_id": "1"})  # no exception escapes
    finally:
        hub.loop.close()
