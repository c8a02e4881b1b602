"""The prompt worker: one daemon thread that runs queued prompts one at a time.

ComfyUI's ``main.prompt_worker`` loop (comfy-compat §6.11): take the next item, execute it
with events routed to the prompt's client, write the history entry through
``queue.task_done``, send the end-of-prompt ``executing {"node": null}``, then act on the
``/free`` flags and collect garbage (at most every 10 s).
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

from api.hub import RunningState, WebSocketHub
from api.resources import call_with_resources

log = logging.getLogger(__name__)

# Without a client id, ComfyUI drops most execution events and broadcasts only these.
_BROADCAST_WITHOUT_CLIENT = frozenset({"progress", "progress_state", "execution_interrupted"})
GC_INTERVAL_S = 10.0


class ClientEventSink:
    """The executor's ``EventSink`` for one prompt: routes events to the prompt's client."""

    def __init__(self, hub: WebSocketHub, client_id: str | None) -> None:
        self.hub = hub
        self.client_id = client_id

    def send(self, event: str, data: dict) -> None:
        if event == "executing":
            self.hub.running.last_node_id = data.get("node")
        if self.client_id is not None:
            self.hub.send_sync(event, data, self.client_id)
        elif event in _BROADCAST_WITHOUT_CLIENT:
            self.hub.send_sync(event, data, None)

    def send_preview(self, preview: tuple, meta: dict) -> None:
        try:
            self.hub.send_preview(preview, meta, self.client_id)
        except Exception:  # a preview that cannot be encoded must not fail the node
            log.exception("dropped a preview of node %s", meta.get("node_id"))


def result_record(result: Any) -> dict:
    """The ``ExecutionResult`` as the plain dict ``PromptQueue.task_done`` stores."""
    if dataclasses.is_dataclass(result):
        return {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    return dict(result)


def crash_record(prompt_id: str, error: BaseException) -> dict:
    """History for a prompt whose execution raised outside any node (an executor bug)."""
    message = {"prompt_id": prompt_id, "node_id": None, "node_type": None, "executed": [],
               "exception_message": str(error), "exception_type": type(error).__name__,
               "traceback": traceback.format_exception(error), "current_inputs": {},
               "current_outputs": [], "timestamp": int(time.time() * 1000)}
    return {"status_str": "error", "completed": False, "messages": [["execution_error", message]],
            "outputs": {}, "meta": {}}


@dataclasses.dataclass
class FreeRequest:
    unload_models: bool = False
    free_memory: bool = False


class PromptWorker:
    """Owns the worker thread (status broadcasts come from the queue's listeners)."""

    def __init__(self, queue: Any, executor: Any, hub: WebSocketHub, interrupt: Any,
                 resources: Mapping[str, Any]) -> None:
        self.queue = queue
        self.executor = executor
        self.hub = hub
        self.interrupt = interrupt
        self.resources = resources
        self._free = FreeRequest()
        self._free_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_gc = time.monotonic()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="kiln-prompt-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the thread to end after the current prompt; True if it ended within ``timeout``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def request_free(self, unload_models: bool, free_memory: bool) -> None:
        """Ask for models to be unloaded / caches dropped between prompts (``POST /free``)."""
        with self._free_lock:
            self._free.unload_models |= unload_models
            self._free.free_memory |= free_memory

    def run(self) -> None:
        while not self._stop.is_set():
            item = self.queue.get(timeout=0.5)
            if item is not None:
                try:
                    self.run_item(item)
                except Exception:  # the one worker thread must outlive any single prompt
                    log.exception("prompt %s could not be finished", item[1])
            self._handle_free()
            if item is not None and time.monotonic() - self._last_gc > GC_INTERVAL_S:
                gc.collect()
                self._last_gc = time.monotonic()

    def run_item(self, item: tuple) -> None:
        """Execute one ``(number, prompt_id, prompt, extra_data, outputs)`` queue item."""
        _, prompt_id, prompt, extra_data, outputs = item[:5]
        client_id = extra_data.get("client_id")
        self.hub.running = RunningState(client_id=client_id, prompt_id=prompt_id)
        self.interrupt.clear()
        sink = ClientEventSink(self.hub, client_id)
        started = time.perf_counter()
        try:
            result = result_record(call_with_resources(self.resources, self.interrupt, self.executor.execute,
                                                       prompt, prompt_id, extra_data, list(outputs),
                                                       sink, self.interrupt))
        except Exception as error:  # keep the worker alive whatever the executor does
            log.exception("prompt %s crashed the executor", prompt_id)
            result = crash_record(prompt_id, error)
            sink.send("execution_error", result["messages"][0][1])
        try:
            self.queue.task_done(prompt_id, result)
        except (TypeError, ValueError) as error:  # e.g. a node's ui result that is not JSON
            log.exception("history of prompt %s could not be stored as is", prompt_id)
            self.queue.task_done(prompt_id, crash_record(prompt_id, error))
        if client_id is not None:
            self.hub.send_sync("executing", {"node": None, "prompt_id": prompt_id}, client_id)
        self.hub.running = RunningState()
        log.info("prompt %s finished (%s) in %.2f s", prompt_id, result.get("status_str"),
                 time.perf_counter() - started)

    def _handle_free(self) -> None:
        with self._free_lock:
            request, self._free = self._free, FreeRequest()
        if not (request.unload_models or request.free_memory):
            return
        if request.free_memory:
            self.executor.reset()
        is_created = getattr(self.resources, "is_created", None)
        if is_created is not None and is_created("devices"):
            self.resources["devices"].unload_all()
        gc.collect()
        self._last_gc = time.monotonic()
