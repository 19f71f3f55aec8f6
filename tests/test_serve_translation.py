"""POST /v1/translations through `llamadesk serve`, with the gemma3-270m translation starter."""

from __future__ import annotations

import httpx
import pytest

from tests.serve_process import serving

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=[(), ("--parallel", "2")], ids=["one-at-a-time", "parallel"])
def http(request):
    # With --parallel the translation's segments go to the batched decoder, beside other replies.
    with serving(*request.param) as served, httpx.Client(base_url=served.url, timeout=300) as client:
        yield client


def test_a_translation_keeps_its_placeholders(http):
    response = http.post(
        "/v1/translations", json={"text": "Hello %s, your order {0} is ready.", "source": "en", "target": "fr"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "gemma3-270m" and body["source"] == "en" and body["target"] == "fr"
    assert "%s" in body["text"] and "{0}" in body["text"] and body["text"] != "Hello %s, your order {0} is ready."
    assert [s["source"] for s in body["segments"]] == ["Hello %s, your order {0} is ready."]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"text": "Hi", "target": "klingonese"}, "unknown language"),
        ({"text": "", "target": "fr"}, "text"),
        ({"text": "Hi"}, "target"),
        ({"text": "Hi", "target": "fr", "mode": "pages"}, "mode"),
        ({"text": "Hi", "target": "fr", "glossary": ["x"]}, "glossary"),
        ({"text": "Hi", "target": "fr", "model": "../gemma.gguf"}, "does not exist"),
    ],
)
def test_bad_translation_requests_are_4xx(http, body, needle):
    response = http.post("/v1/translations", json=body)
    assert 400 <= response.status_code < 500 and needle in response.json()["error"]["message"]
