"""Origin check, CORS and token authentication, over real HTTP and websockets."""

from __future__ import annotations

import aiohttp
import pytest

from tests.helpers.kiln_server import run_async, ws_connect


async def fetch(method: str, url: str, **kwargs) -> tuple[int, dict, str]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, allow_redirects=False, **kwargs) as response:
            return response.status, dict(response.headers), await response.text()


def call(method: str, url: str, **kwargs) -> tuple[int, dict, str]:
    return run_async(fetch(method, url, **kwargs))


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1:1", "null"])
def test_a_foreign_origin_on_a_loopback_host_is_refused(kiln_server, origin):
    status, _, body = call("POST", kiln_server + "/prompt", json={"prompt": {}}, headers={"Origin": origin})
    assert status == 403 and body == ""


def test_the_same_origin_and_requests_without_origin_pass(kiln_server):
    assert call("GET", kiln_server + "/queue", headers={"Origin": kiln_server})[0] == 200
    assert call("GET", kiln_server + "/queue")[0] == 200
    host_without_port = kiln_server.rsplit(":", 1)[0]
    assert call("GET", kiln_server + "/queue", headers={"Origin": host_without_port})[0] == 200


def test_a_foreign_origin_cannot_open_the_websocket(kiln_server):
    async def scenario():
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await ws_connect(session, kiln_server, "x", origin="http://evil.example")
            assert refused.value.status == 403

    run_async(scenario())


def test_cors_header_allows_other_origins_and_answers_preflight(start_kiln):
    kiln = start_kiln("--enable-cors-header", "https://app.example")
    status, headers, _ = call("OPTIONS", kiln.url + "/prompt", headers={"Origin": "https://app.example"})
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert headers["Access-Control-Allow-Headers"] == "Content-Type, Authorization"
    status, headers, _ = call("GET", kiln.url + "/queue", headers={"Origin": "https://app.example"})
    assert status == 200 and headers["Access-Control-Allow-Credentials"] == "true"


TOKEN = "s3cret-token"


@pytest.fixture
def secured(start_kiln):
    return start_kiln("--auth-token", TOKEN, headers={"Authorization": f"Bearer {TOKEN}"})


def test_with_a_token_every_route_needs_it(secured):
    for path in ("/object_info", "/api/queue", "/system_stats", "/view?filename=x.png", "/extensions"):
        status, _, body = call("GET", secured.url + path)
        assert status == 401 and "authentication required" in body
    assert call("GET", secured.url + "/queue", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert call("GET", secured.url + "/queue", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200


def test_a_browser_without_a_token_is_sent_to_the_login_page(secured):
    status, headers, _ = call("GET", secured.url + "/", headers={"Accept": "text/html"})
    assert status == 302 and headers["Location"] == "/login"
    status, _, page = call("GET", secured.url + "/login")
    assert status == 200 and 'name="token"' in page


def test_login_sets_a_cookie_that_opens_http_and_the_websocket(secured):
    async def scenario():
        # unsafe=True: aiohttp's jar otherwise ignores cookies from IP-address hosts
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            async with session.post(secured.url + "/login", json={"token": "nope"}) as response:
                assert response.status == 401
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await ws_connect(session, secured.url, "c1")
            assert refused.value.status == 401
            async with session.post(secured.url + "/login", data={"token": TOKEN}, allow_redirects=False) as response:
                assert response.status == 302
            async with session.get(secured.url + "/queue") as response:
                assert response.status == 200
            client = await ws_connect(session, secured.url, "c1")
            hello = await client.wait_for(lambda m: m["type"] == "status")
            assert hello["data"]["sid"] == "c1"

    run_async(scenario())


def test_bearer_header_opens_the_websocket(secured):
    async def scenario():
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
            client = await ws_connect(session, secured.url, "c2")
            assert (await client.wait_for(lambda m: m["type"] == "status"))["data"]["sid"] == "c2"

    run_async(scenario())


def test_token_file_is_read(start_kiln, tmp_path):
    token_file = tmp_path / "token.txt"
    token_file.write_text("from-a-file\n")
    kiln = start_kiln("--auth-token-file", str(token_file), headers={"Authorization": "Bearer from-a-file"})
    assert call("GET", kiln.url + "/queue")[0] == 401
