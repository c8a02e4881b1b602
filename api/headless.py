"""``python server.py --run WORKFLOW``: validate and execute one workflow without a server.

Accepts a UI workflow or an API prompt as ``.json``, or a PNG that carries one (its
``workflow`` tEXt chunk, falling back to ``prompt``, as the frontend reads them, comfy-compat
§5). Shows a tqdm bar over the nodes and one per sampler run, prints the files the output
nodes wrote, and returns a process exit code: 0 on success, 1 on any failure (with a
message on stderr naming the node and the problem).
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any, TextIO

from api.images import png_text_chunks
from api.routes_prompt import looks_like_ui_workflow

_FILE_KEYS = ("images", "audio", "video", "gifs", "files")


class HeadlessError(Exception):
    """A workflow that cannot be run; the message is shown to the user as is."""


def load_document(path: Path) -> dict:
    """The workflow JSON inside ``path`` (.json, or .png with a workflow/prompt chunk)."""
    if not path.is_file():
        raise HeadlessError(f"{path}: no such file")
    if path.suffix.lower() == ".png":
        try:
            chunks = png_text_chunks(path)
        except OSError as exc:
            raise HeadlessError(f"{path}: not a readable PNG ({exc})") from None
        text = chunks.get("workflow") or chunks.get("prompt")
        if text is None:
            raise HeadlessError(f"{path}: the PNG carries no 'workflow' or 'prompt' chunk")
    else:
        text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise HeadlessError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise HeadlessError(f"{path}: expected a JSON object, got {type(document).__name__}")
    return document


def prompt_from_document(document: dict, registry: Any) -> tuple[dict, dict]:
    """``(api_prompt, extra_data)``; a UI workflow is compiled and kept for PNG metadata."""
    if looks_like_ui_workflow(document):
        from engine.workflow import WorkflowError, compile_workflow

        try:
            prompt = compile_workflow(document, registry.object_info())
        except WorkflowError as exc:
            raise HeadlessError(f"cannot compile the workflow: {exc}") from None
        return prompt, {"extra_pnginfo": {"workflow": document}}
    if isinstance(document.get("prompt"), dict):  # a saved POST /prompt body
        extra = document.get("extra_data")
        return document["prompt"], dict(extra) if isinstance(extra, dict) else {}
    return document, {}


def describe_validation_error(result: Any) -> str:
    lines = [f"invalid workflow: {result.error.get('message', '')} {result.error.get('details', '')}".rstrip()]
    for node_id, entry in result.node_errors.items():
        for error in entry.get("errors", []):
            lines.append(f"  node {node_id} ({entry.get('class_type')}): {error.get('message')}: {error.get('details')}")
    return "\n".join(lines)


class HeadlessSink:
    """An ``EventSink`` that draws tqdm bars and collects output files and errors."""

    def __init__(self, prompt: dict, folders: Any, stream: TextIO = sys.stderr) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.prompt = prompt
        self.folders = folders
        self.stream = stream
        self.nodes_bar = tqdm(total=len(prompt), desc="nodes", unit="node", file=stream, leave=True)
        self.steps_bar: Any = None
        self.steps_node: str | None = None
        self.saved_files: list[Path] = []
        self.failure: str | None = None

    def send(self, event: str, data: dict) -> None:
        if event == "execution_cached":
            self.nodes_bar.update(len(data.get("nodes", [])))
        elif event == "executing" and data.get("node") is not None:
            self._close_steps()
            node = str(data["node"])
            self.nodes_bar.set_postfix_str(f"{node} {self.prompt.get(node, {}).get('class_type', '')}")
            self.nodes_bar.update(1)
        elif event == "progress":
            self._steps(str(data.get("node")), int(data.get("value", 0)), int(data.get("max", 0)))
        elif event == "executed":
            self.saved_files.extend(self._files_of(data.get("output") or {}))
        elif event == "execution_error":
            self.failure = (f"node {data.get('node_id')} ({data.get('node_type')}) failed: "
                            f"{data.get('exception_type')}: {data.get('exception_message')}")
        elif event == "execution_interrupted":
            self.failure = f"interrupted at node {data.get('node_id')} ({data.get('node_type')})"

    def send_preview(self, preview: Any, meta: dict) -> None:
        """Previews have nowhere to go in a terminal."""

    def _steps(self, node: str, value: int, total: int) -> None:
        if self.steps_bar is None or self.steps_node != node or self.steps_bar.total != total:
            self._close_steps()
            self.steps_bar = self._tqdm(total=total, desc=f"  node {node}", unit="step", file=self.stream, leave=False)
            self.steps_node = node
        self.steps_bar.update(value - self.steps_bar.n)

    def _close_steps(self) -> None:
        if self.steps_bar is not None:
            self.steps_bar.close()
            self.steps_bar = None

    def _files_of(self, ui: dict) -> list[Path]:
        files = []
        for key in _FILE_KEYS:
            for item in ui.get(key) or []:
                if isinstance(item, dict) and "filename" in item:
                    base = self.folders.directory_for_type(item.get("type", "output")) or self.folders.output_dir
                    files.append(Path(base) / item.get("subfolder", "") / item["filename"])
        return files

    def close(self) -> None:
        self._close_steps()
        self.nodes_bar.close()


def run_headless(kiln: Any, path: Path, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run one workflow file with ``kiln``'s registry and executor; returns the exit code."""
    from api.resources import server_context
    from engine.context import use_context

    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    try:
        with use_context(server_context(kiln.resources, kiln.interrupt)):  # INPUT_TYPES may list files
            return _run(kiln, Path(path), stdout, stderr)
    except KeyboardInterrupt:
        print("kiln: interrupted", file=stderr)
        return 130


def _run(kiln: Any, path: Path, stdout: TextIO, stderr: TextIO) -> int:
    from engine.validation import validate_prompt

    try:
        prompt, extra_data = prompt_from_document(load_document(path), kiln.registry)
        result = validate_prompt(kiln.registry, prompt, None)
        if not result.ok:
            raise HeadlessError(describe_validation_error(result))
    except HeadlessError as exc:
        print(f"kiln: error: {exc}", file=stderr)
        return 1
    sink = HeadlessSink(prompt, kiln.folders, stderr)
    try:
        outcome = kiln.executor.execute(prompt, uuid.uuid4().hex, extra_data, list(result.outputs),
                                        sink, kiln.interrupt)
    finally:
        sink.close()
    if outcome.status_str != "success" or sink.failure:
        print(f"kiln: error: {sink.failure or 'execution failed'}", file=stderr)
        return 1
    for saved in sink.saved_files:
        print(saved, file=stdout)
    return 0
