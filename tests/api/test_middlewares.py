"""Origin check and cache headers as pure functions (comfy-compat §1.1)."""

from __future__ import annotations

import pytest

from api.middlewares import cache_header_for, origin_mismatch


@pytest.mark.parametrize("host, origin, refused", [
    ("127.0.0.1:8188", "http://127.0.0.1:8188", False),
    ("localhost:8188", "http://localhost:8188", False),
    ("127.0.0.1:8188", "http://127.0.0.1", False),       # a side without port drops the port
    ("127.0.0.1", "http://127.0.0.1:9999", False),
    ("127.0.0.1:8188", "http://evil.example", True),
    ("localhost:8188", "http://127.0.0.1:8188", True),  # names compared, not resolved
    ("[::1]:8188", "http://[::1]:8188", False),
    ("[::1]:8188", "http://[::1]:1", True),
    ("127.0.0.1:8188", "null", True),
    ("192.168.1.5:8188", "http://evil.example", False),  # only loopback hosts are guarded
    ("127.0.0.1:8188", None, False),
    (None, "http://evil.example", False),
])
def test_origin_mismatch(host, origin, refused):
    assert origin_mismatch(host, origin) is refused


@pytest.mark.parametrize("path, status, header", [
    ("/scripts/app.js", 200, "no-cache"),
    ("/style.CSS", 200, "no-cache"),
    ("/templates/index.json", 200, "no-cache"),
    ("/templates/other.json", 200, None),
    ("/img/a.png", 200, "public, max-age=86400"),
    ("/img/a.webp", 301, "public, max-age=86400"),
    ("/img/a.jpg", 404, "public, max-age=3600"),
    ("/img/a.jpg", 302, "no-cache"),
    ("/img/a.jpg", 500, None),
    ("/prompt", 200, None),
])
def test_cache_header_for(path, status, header):
    assert cache_header_for(path, status) == header
