"""Optional token authentication (``--auth-token`` / ``--auth-token-file``).

Kiln's addition (ComfyUI has none): with a token set, every HTTP route and ``/ws`` require
it, either as ``Authorization: Bearer <token>`` or as the ``kiln_token`` cookie that
``POST /login`` sets after checking the token. Comparison uses ``hmac.compare_digest`` so
the answer time does not reveal how much of a guess was right.
"""

from __future__ import annotations

import hmac
import html
import json
from collections.abc import Callable

from aiohttp import web

COOKIE_NAME = "kiln_token"
_OPEN_PATHS = frozenset({"/login", "/api/login"})

LOGIN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Kiln: sign in</title>
<style>body{{font-family:sans-serif;background:#202020;color:#ddd;display:grid;place-items:center;height:100vh;margin:0}}
form{{display:flex;flex-direction:column;gap:.6em;min-width:18em}}input,button{{font-size:1em;padding:.4em}}</style></head>
<body><form method="post" action="/login"><h2>Kiln</h2>
<label>Access token <input type="password" name="token" autofocus required></label>
<button type="submit">Sign in</button><p>{message}</p></form></body></html>"""


def token_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def request_token(request: web.Request) -> str | None:
    """The token a request carries: Bearer header first, then the login cookie."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(COOKIE_NAME)


def auth_middleware(expected: str) -> Callable:
    @web.middleware
    async def require_token(request: web.Request, handler: Callable) -> web.StreamResponse:
        if request.path in _OPEN_PATHS or token_matches(expected, request_token(request)):
            return await handler(request)
        if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
            return web.Response(status=302, headers={"Location": "/login"})  # a browser: show the form
        return web.json_response({"error": "authentication required: send 'Authorization: Bearer <token>' "
                                           "or sign in at /login"}, status=401)

    return require_token


def login_routes(expected: str) -> web.RouteTableDef:
    """``GET /login`` (the page) and ``POST /login`` (form or JSON ``{"token"}``)."""
    routes = web.RouteTableDef()

    @routes.get("/login")
    async def login_page(request: web.Request) -> web.Response:
        return web.Response(text=LOGIN_PAGE.format(message=""), content_type="text/html")

    @routes.post("/login")
    async def login(request: web.Request) -> web.Response:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                body = None
            given = body.get("token") if isinstance(body, dict) else None
            as_json = True
        else:
            given = (await request.post()).get("token")
            as_json = False
        if not isinstance(given, str) or not token_matches(expected, given):
            if as_json:
                return web.json_response({"error": "wrong token"}, status=401)
            return web.Response(text=LOGIN_PAGE.format(message=html.escape("Wrong token.")),
                                content_type="text/html", status=401)
        response = web.json_response({"ok": True}) if as_json else web.Response(status=302, headers={"Location": "/"})
        response.set_cookie(COOKIE_NAME, given, httponly=True, samesite="Strict", path="/")
        return response

    return routes
