"""A small synchronous HTTP client for driving a Kiln server from the security and reliability suites.

Plain ``urllib`` so that a test controls every byte it sends: paths are sent as given (the
caller percent-encodes), multipart file names travel in the RFC 5987 ``filename*`` form so
that backslashes and percent signs arrive unchanged, and HTTP error statuses are returned,
not raised. Also: the server process's memory figures from ``/proc``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def segment(name: str) -> str:
    """``name`` as one URL path segment (``/`` and ``%`` encoded, so the server decodes it back)."""
    return quote(name, safe="")


def multipart(fields: dict[str, str], file_field: str, file_name: str, data: bytes,
              content_type: str = "image/png") -> tuple[str, bytes]:
    """A ``multipart/form-data`` body; ``file_name`` is sent exactly via ``filename*=UTF-8''...``."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                     + value.encode() + b"\r\n")
    disposition = f"form-data; name=\"{file_field}\"; filename*=UTF-8''{quote(file_name, safe='')}"
    parts.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {content_type}\r\n\r\n".encode()
                 + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


class KilnHttp:
    """Requests against one server; ``headers`` go with every request (e.g. a bearer token)."""

    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.headers = dict(headers or {})
        self.timeout = timeout

    def request(self, method: str, path: str, *, body: bytes | None = None, json_body: Any = ...,
                query: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> Reply:
        all_headers = {**self.headers, **(headers or {})}
        if json_body is not ...:
            body = json.dumps(json_body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        target = self.url + path + ("?" + urlencode(query) if query else "")
        request = urllib.request.Request(target, data=body, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return Reply(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, dict(error.headers), error.read())

    def get(self, path: str, /, **query: str) -> Reply:
        return self.request("GET", path, query=query or None)

    def post_json(self, path: str, body: Any) -> Reply:
        return self.request("POST", path, json_body=body)

    def upload(self, route: str, file_name: str, data: bytes, **fields: str) -> Reply:
        content_type, body = multipart(fields, "image", file_name, data)
        return self.request("POST", route, body=body, headers={"Content-Type": content_type})

    def queue_prompt(self, prompt: dict, **extra: Any) -> str:
        reply = self.post_json("/prompt", {"prompt": prompt, **extra})
        assert reply.status == 200, reply.text
        return reply.json()["prompt_id"]

    def history_entry(self, prompt_id: str) -> dict | None:
        return self.get(f"/history/{segment(prompt_id)}").json().get(prompt_id)

    def wait_for_history(self, prompt_ids: list[str], timeout: float = 60.0) -> dict[str, dict]:
        """Poll ``/history`` until every id has an entry; returns them by id."""
        deadline = time.monotonic() + timeout
        while True:
            history = self.get("/history").json()
            if all(prompt_id in history for prompt_id in prompt_ids):
                return {prompt_id: history[prompt_id] for prompt_id in prompt_ids}
            if time.monotonic() > deadline:
                missing = [p for p in prompt_ids if p not in history]
                raise TimeoutError(f"{len(missing)} prompts never reached the history, e.g. {missing[:3]}")
            time.sleep(0.1)

    def wait_until_idle(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.get("/prompt").json()["exec_info"]["queue_remaining"]:
            if time.monotonic() > deadline:
                raise TimeoutError("the queue did not drain")
            time.sleep(0.1)

    def alive(self) -> bool:
        try:
            return self.get("/queue").status == 200
        except OSError:
            return False


def error_message(entry: dict) -> dict | None:
    """The ``execution_error`` data of a history entry, if it failed with one."""
    for name, data in entry["status"]["messages"]:
        if name == "execution_error":
            return data
    return None


def memory_kib(pid: int, field: str = "VmRSS") -> int:
    """A ``/proc/<pid>/status`` memory field (``VmRSS``, ``VmHWM``...) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def file_tree(root: Path, ignore: tuple[str, ...] = ("server.log", "kiln_queue.sqlite3")) -> dict[str, tuple[int, int]]:
    """``{relative path: (size, mtime_ns)}`` of every file under ``root`` (server log and queue db left out)."""
    tree = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.name.startswith(ignore):
            stat = path.stat()
            tree[path.relative_to(root).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return tree
