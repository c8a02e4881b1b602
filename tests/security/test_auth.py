"""``--auth-token``: every route, bare and under ``/api``, with and without the token.

Extends ``tests/api/test_security.py`` (which covers the login page, the cookie, a bearer
websocket, the token file and the ``--listen 0.0.0.0`` warning without a token): here the
route list is taken from the server's own route tables, so a route added later is covered
without editing this file; every method of every route answers 401 without the token and
something other than 401 with it; near-miss tokens are refused; the websocket is refused
without a valid token; the token is never echoed back; ``--listen`` on all interfaces warns
only when no token is set.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from api import routes_files, routes_prompt, routes_system, routes_user, routes_ws
from tests.helpers.kiln_server import REPO_ROOT, KilnProcess, launch, run_async
from tests.reliability.kiln_http import KilnHttp

TOKEN = "kiln-Auth-Token-7f3a9c"
OPEN_PATHS = {"/login", "/api/login"}


def route_table() -> list[tuple[str, str]]:
    """(method, path) of every route the server registers, placeholders filled, bare and /api."""
    routes = set()
    for table in (routes_prompt.routes, routes_files.routes, routes_user.routes, routes_system.routes, routes_ws.routes):
        for definition in table:
            path = re.sub(r"\{[^}]+\}", "x", definition.path)
            for prefix in ("", "/api"):
                routes.add((definition.method, prefix + path))
    routes |= {("GET", "/internal/folder_paths"), ("GET", "/internal/files/output"), ("GET", "/"),
               ("GET", "/index.html"), ("GET", "/extensions/example/example.js")}
    return sorted(routes)


ROUTES = route_table()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KilnProcess]:
    base = tmp_path_factory.mktemp("auth")
    kiln = launch(base, "--auth-token", TOKEN, "--listen", "127.0.0.1",
                  plugins=("example",), headers={"Authorization": f"Bearer {TOKEN}"})
    yield kiln
    kiln.stop()


def test_the_route_table_covers_the_api(secured):
    paths = {path for _, path in ROUTES}
    assert {"/prompt", "/api/prompt", "/queue", "/history", "/view", "/upload/image", "/userdata/x", "/ws",
            "/object_info", "/system_stats", "/interrupt", "/free", "/settings"} <= paths


def test_without_the_token_every_route_and_method_is_refused(secured):
    anonymous = KilnHttp(secured.url)
    for method, path in ROUTES:
        if path in OPEN_PATHS:
            continue
        body = b"{}" if method in ("POST", "PUT", "PATCH") else None
        reply = anonymous.request(method, path, body=body, headers={"Accept": "application/json"})
        assert reply.status == 401, f"{method} {path} answered {reply.status} without a token"
        assert "authentication required" in reply.text


NEAR_MISSES = ["", "wrong", TOKEN[:-1], TOKEN + "x", TOKEN.lower(), TOKEN.upper(), " " + TOKEN[1:]]


@pytest.mark.parametrize("header", [f"Bearer {miss}" for miss in NEAR_MISSES] + [f"Basic {TOKEN}", TOKEN])
def test_near_miss_bearer_headers_are_refused(secured, header):
    anonymous = KilnHttp(secured.url)
    for path in ("/queue", "/api/object_info", "/history"):
        assert anonymous.request("GET", path, headers={"Authorization": header}).status == 401, (header, path)


@pytest.mark.parametrize("cookie", NEAR_MISSES)
def test_near_miss_cookies_are_refused(secured, cookie):
    reply = KilnHttp(secured.url).request("GET", "/queue", headers={"Cookie": f"kiln_token={cookie}"})
    assert reply.status == 401


def test_with_the_token_no_route_answers_401(secured):
    client = KilnHttp(secured.url, headers={"Authorization": f"Bearer {TOKEN}"})
    for method, path in ROUTES:
        if "/ws" in path or path.endswith("/interrupt") or path.endswith("/free"):
            continue  # the websocket is checked below; interrupt/free would disturb nothing but are POST-only
        body = b"{}" if method in ("POST", "PUT", "PATCH") else None
        reply = client.request(method, path, body=body, headers={"Accept": "application/json"})
        assert reply.status != 401 and reply.status < 500, f"{method} {path}: {reply.status} {reply.text[:200]}"
    for path in ("/interrupt", "/api/free"):
        assert client.request("POST", path, body=b"{}").status == 200
    assert client.get("/queue").status == 200


@pytest.mark.parametrize("path", ["/ws", "/api/ws"])
def test_the_websocket_needs_the_token(secured, path):
    target = secured.url.replace("http://", "ws://") + path + "?clientId=someone"

    async def scenario() -> None:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Cookie": "kiln_token=nope"}):
            async with aiohttp.ClientSession(headers=headers) as session:
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(target)
                assert refused.value.status == 401
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
            socket = await session.ws_connect(target)
            hello = await socket.receive_json(timeout=10)
            assert hello["type"] == "status" and hello["data"]["sid"] == "someone"
            await socket.close()

    run_async(scenario())


def test_the_token_is_never_echoed_back(secured):
    client = KilnHttp(secured.url, headers={"Authorization": f"Bearer {TOKEN}"})
    for path in ("/system_stats", "/api/system_stats", "/features", "/queue", "/history", "/settings"):
        reply = client.get(path)
        assert reply.status == 200 and TOKEN not in reply.text, f"{path} reveals the token"
    assert TOKEN not in secured.log(), "the server log reveals the token"


def listen_warnings(*flags: str) -> str:
    """What ``server.py`` logs about listening, without binding: ``--quick-test-for-ci`` exits first."""
    done = subprocess.run([sys.executable, str(REPO_ROOT / "server.py"), "--base-directory", str(Path(tempfile.mkdtemp())),
                           "--disable-all-custom-nodes", "--quick-test-for-ci", *flags],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


@pytest.mark.parametrize("listen", [("--listen", "0.0.0.0"), ("--listen",), ("--listen", "127.0.0.1,192.168.1.2")],
                         ids=["ipv4-any", "bare-flag", "lan-address"])
def test_listening_beyond_loopback_warns_only_without_a_token(listen):
    assert "without --auth-token" in listen_warnings(*listen)
    assert "without --auth-token" not in listen_warnings(*listen, "--auth-token", TOKEN)


def test_loopback_only_does_not_warn():
    assert "without --auth-token" not in listen_warnings("--listen", "127.0.0.1,::1")
