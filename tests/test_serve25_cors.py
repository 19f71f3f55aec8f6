"""--cors: the preflight a page makes with the openai JS SDK or ollama-js passes. Only Authorization
and Content-Type were allowed, so their extra headers (x-stainless-*, User-Agent) got 400."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from llamadesk.app.engine.types import LoadSettings
from llamadesk.app.server.app import build_app
from llamadesk.app.server.model_pool import ModelPool
from llamadesk.app.server.server_config import ServerConfig

PAGE = "http://a.example"
SDK_HEADERS = {
    "/v1/chat/completions": "authorization,content-type,x-stainless-arch,x-stainless-lang,x-stainless-retry-count",
    "/api/chat": "content-type,user-agent",
}


@pytest.mark.parametrize("path", list(SDK_HEADERS))
def test_the_preflight_of_a_client_library_in_a_page_is_allowed(path):
    pool = ModelPool({"a": Path("a.gguf")}, LoadSettings(), 2, lambda p, s: None, lambda n: None)
    client = TestClient(build_app(ServerConfig(cors_origins=(PAGE,)), pool))  # no lifespan: the pool stays idle
    response = client.options(
        path,
        headers={
            "Origin": PAGE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": SDK_HEADERS[path],
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == PAGE
    allowed = response.headers["access-control-allow-headers"].lower()
    assert all(header in allowed for header in SDK_HEADERS[path].split(","))


def test_a_page_from_another_origin_is_still_refused():
    pool = ModelPool({"a": Path("a.gguf")}, LoadSettings(), 2, lambda p, s: None, lambda n: None)
    client = TestClient(build_app(ServerConfig(cors_origins=(PAGE,)), pool))
    response = client.options(
        "/v1/chat/completions",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in response.headers
