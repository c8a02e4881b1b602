"""Prompt submission, queue, history, interrupt, free, object_info and workflow compile.

Shapes are ComfyUI's (comfy-compat §1.2–§1.4, §1.7, §1.9). Kiln additions: ``POST /prompt``
also takes a UI workflow and compiles it server-side (``engine.workflow.compile_workflow``),
``POST /workflow/compile`` exposes that compiler, and ``POST /queue`` also understands
``{"pause": true}``, ``{"resume": true}`` and ``{"move": {"prompt_id", "to"}}``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from aiohttp import web

from api.state import ServerState, read_json, state_of

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


def error_body(error_type: str, message: str, details: str = "") -> dict:
    """The ``{"error": {...}, "node_errors": {}}`` body of a prompt-level 400."""
    return {"error": {"type": error_type, "message": message, "details": details or message,
                      "extra_info": {}}, "node_errors": {}}


def looks_like_ui_workflow(value: Any) -> bool:
    """A litegraph workflow (comfy-compat §4) has a ``nodes`` list and ``links``."""
    return isinstance(value, dict) and isinstance(value.get("nodes"), list) and "links" in value


def workflow_in(body: dict) -> dict | None:
    """The UI workflow a ``POST /prompt`` body carries instead of an API prompt, if any."""
    if looks_like_ui_workflow(body.get("workflow")):
        return body["workflow"]
    if looks_like_ui_workflow(body.get("prompt")):
        return body["prompt"]
    if looks_like_ui_workflow(body):
        return body
    return None


def compile_ui_workflow(state: ServerState, workflow: dict) -> dict:
    """Compile, raising ``WorkflowError`` for any document the compiler cannot read.

    A malformed document can trip the compiler anywhere (a list where it expects an object);
    that is the client's error, so it becomes a 400 naming the problem, and the traceback is
    logged because a WorkflowError with a precise message would be better.
    """
    from engine.workflow import WorkflowError, compile_workflow

    try:
        return compile_workflow(workflow, state.registry.object_info())
    except WorkflowError:
        raise
    except (AttributeError, TypeError, ValueError, KeyError, IndexError, RecursionError) as exc:
        log.warning("the workflow compiler failed on a malformed workflow", exc_info=True)
        raise WorkflowError(f"malformed workflow ({type(exc).__name__}: {exc})") from exc


def _number_for(state: ServerState, body: dict) -> float | int:
    if "number" in body:
        try:
            return float(body["number"])
        except (TypeError, ValueError):
            raise web.HTTPBadRequest(text=f"'number' must be a number, got {body['number']!r}") from None
    number = state.queue.next_number()
    return -number if body.get("front") else number


def _partial_targets(body: dict) -> list[str] | None:
    targets = body.get("partial_execution_targets")
    if targets is None:
        return None
    if not isinstance(targets, list):
        raise web.HTTPBadRequest(text="'partial_execution_targets' must be a list of node ids")
    return [str(t) for t in targets]


@routes.get("/prompt")
async def get_prompt(request: web.Request) -> web.Response:
    return web.json_response(state_of(request).status_data()["status"])


@routes.post("/prompt")
async def post_prompt(request: web.Request) -> web.Response:
    state = state_of(request)
    body = state.prompt_server.trigger_on_prompt(await read_json(request))
    workflow = workflow_in(body)
    if workflow is not None:
        from engine.workflow import WorkflowError

        try:
            prompt = await state.node_code(compile_ui_workflow, state, workflow)
        except WorkflowError as exc:
            return web.json_response(error_body("invalid_workflow", "Cannot compile the workflow", str(exc)), status=400)
    elif "prompt" in body:
        prompt = body["prompt"]
    else:
        return web.json_response(error_body("no_prompt", "No prompt provided"), status=400)
    if not isinstance(prompt, dict):
        return web.json_response(error_body("invalid_prompt", "The prompt must be a JSON object of nodes"), status=400)
    extra_data = body.get("extra_data", {})
    if not isinstance(extra_data, dict):
        return web.json_response(error_body("invalid_prompt", "'extra_data' must be a JSON object"), status=400)
    extra_data = dict(extra_data)
    if "client_id" in body:
        extra_data["client_id"] = body["client_id"]
    if workflow is not None:
        pnginfo = dict(extra_data.get("extra_pnginfo") or {})
        pnginfo.setdefault("workflow", workflow)
        extra_data["extra_pnginfo"] = pnginfo
    number = _number_for(state, body)
    prompt_id = str(body["prompt_id"]) if body.get("prompt_id") is not None else str(uuid.uuid4())
    partial = _partial_targets(body)

    from engine.validation import validate_prompt

    result = await state.node_code(validate_prompt, state.registry, prompt, partial)
    if not result.ok:
        log.info("prompt refused: %s", result.error)
        return web.json_response({"error": result.error, "node_errors": result.node_errors}, status=400)
    await asyncio.to_thread(state.queue.put, (number, prompt_id, prompt, extra_data, list(result.outputs)))
    return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": result.node_errors})


@routes.get("/queue")
async def get_queue(request: web.Request) -> web.Response:
    queue = state_of(request).queue
    return web.json_response({"queue_running": queue.running(), "queue_pending": queue.pending()})


@routes.post("/queue")
async def post_queue(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await read_json(request)
    if body.get("clear"):
        state.queue.wipe()
    if "delete" in body:
        ids = body["delete"]
        if not isinstance(ids, list):
            raise web.HTTPBadRequest(text="'delete' must be a list of prompt ids")
        state.queue.delete([str(i) for i in ids])
    if body.get("pause"):
        state.queue.pause()
    if body.get("resume"):
        state.queue.resume()
    if "move" in body:
        move = body["move"]
        if not isinstance(move, dict) or move.get("to") not in ("front", "back") or "prompt_id" not in move:
            raise web.HTTPBadRequest(text="'move' must be {\"prompt_id\": id, \"to\": \"front\"|\"back\"}")
        state.queue.move(str(move["prompt_id"]), move["to"])
    return web.Response()


def _int_query(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"query parameter {name!r} must be an integer") from None


@routes.get("/history")
async def get_history(request: web.Request) -> web.Response:
    history = state_of(request).queue.history
    max_items, offset = _int_query(request, "max_items"), _int_query(request, "offset")
    return web.json_response(await asyncio.to_thread(history.get, max_items, offset))


@routes.get("/history/{prompt_id}")
async def get_history_entry(request: web.Request) -> web.Response:
    history = state_of(request).queue.history
    return web.json_response(await asyncio.to_thread(history.get_one, request.match_info["prompt_id"]))


@routes.post("/history")
async def post_history(request: web.Request) -> web.Response:
    history = state_of(request).queue.history
    body = await read_json(request)
    if body.get("clear"):
        history.wipe()
    if "delete" in body:
        if not isinstance(body["delete"], list):
            raise web.HTTPBadRequest(text="'delete' must be a list of prompt ids")
        history.delete([str(i) for i in body["delete"]])
    return web.Response()


@routes.post("/interrupt")
async def post_interrupt(request: web.Request) -> web.Response:
    """Interrupt the running prompt; with ``prompt_id`` only if that one is running."""
    state = state_of(request)
    try:
        body = await read_json(request, default={})
    except web.HTTPBadRequest:
        body = {}  # ComfyUI accepts an empty or invalid body here
    prompt_id = body.get("prompt_id") if isinstance(body, dict) else None
    if prompt_id is None or state.hub.running.prompt_id == str(prompt_id):
        state.interrupt.set()
    return web.Response()


@routes.post("/free")
async def post_free(request: web.Request) -> web.Response:
    state = state_of(request)
    body = await read_json(request, default={})
    if state.worker is not None:
        state.worker.request_free(bool(body.get("unload_models")), bool(body.get("free_memory")))
    return web.Response()


@routes.get("/object_info")
async def get_object_info(request: web.Request) -> web.Response:
    state = state_of(request)
    return web.json_response(await state.node_code(state.registry.object_info))


@routes.get("/object_info/{node_class}")
async def get_object_info_one(request: web.Request) -> web.Response:
    registry = state_of(request).registry
    name = request.match_info["node_class"]
    if name not in registry.classes:  # aliases resolve in prompts but are not listed
        return web.json_response({})
    try:
        info = await state_of(request).node_code(registry.node_info, name)
    except Exception:
        log.exception("INPUT_TYPES of %s failed", name)
        return web.json_response({})
    return web.json_response({name: info})


@routes.post("/workflow/compile")
async def post_workflow_compile(request: web.Request) -> web.Response:
    """Kiln: UI workflow in (bare or as ``{"workflow": ...}``), ``{"prompt": api_prompt}`` out."""
    from engine.workflow import WorkflowError

    state = state_of(request)
    body = await read_json(request)
    workflow = workflow_in(body)
    if workflow is None:
        return web.json_response(error_body("invalid_workflow", "Expected a UI workflow with 'nodes' and 'links'"),
                                 status=400)
    try:
        prompt = await state.node_code(compile_ui_workflow, state, workflow)
    except WorkflowError as exc:
        return web.json_response(error_body("invalid_workflow", "Cannot compile the workflow", str(exc)), status=400)
    return web.json_response({"prompt": prompt})
