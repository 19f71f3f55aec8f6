"""POST /v1/translations through `llamadesk serve`, with the gemma3-270m translation starter."""

from __future__ import annotations

import random

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


def test_a_typeset_source_gets_french_quotes_unless_kept(http):
    text = "The value “%(value)s” is not valid."
    body = {"text": text, "source": "en", "target": "fr"}
    response = http.post("/v1/translations", json=body)
    assert response.status_code == 200, response.text
    assert "«\u00a0%(value)s\u00a0»" in response.json()["text"]
    response = http.post("/v1/translations", json={**body, "keep_quotes": True})
    assert response.status_code == 200, response.text
    assert "“%(value)s”" in response.json()["text"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"text": "Hi", "target": "klingonese"}, "unknown language"),
        ({"text": "", "target": "fr"}, "text"),
        ({"text": "Hi"}, "target"),
        ({"text": "Hi", "target": "fr", "mode": "pages"}, "mode"),
        ({"text": "Hi", "target": "fr", "glossary": ["x"]}, "'glossary' must be an object mapping terms"),
        ({"text": "Hi", "target": "fr", "glossary": {"cat": 5}}, "'glossary' term 'cat' must map to text, not int"),
        ({"text": "Hi", "target": "fr", "glossary": {"cat": " "}}, "'glossary' term 'cat' and its translation must"),
        ({"text": "Hi", "target": "fr", "keep_quotes": "yes"}, "keep_quotes"),
        ({"text": "Hi", "target": "fr", "model": "../gemma.gguf"}, "does not exist"),
        # Nothing to detect a language from: the advice names the API's field, not the CLI's --from.
        ({"text": "12 345 %(n)s", "target": "fr"}, "give 'source'"),
    ],
)
def test_bad_translation_requests_are_4xx(http, body, needle):
    response = http.post("/v1/translations", json=body)
    assert 400 <= response.status_code < 500 and needle in response.json()["error"]["message"]


def test_fuzzed_translation_bodies_never_get_a_500(http):
    """Random mutations of a valid body (seeded, bounded): every answer is a 2xx or a 4xx, and the
    server keeps serving."""
    rng = random.Random(4321)
    values = {
        "text": [None, "", " ", 5, [], {"a": 1}, "Hi", "Hello %s {0} <b>x</b> `code`", "Ok.\n\nYes.", "\u0000\ufffd"],
        "target": [None, "", "fr", "de", "xx", 5, [], "../fr", "French"],
        "source": [None, "", "en", "fr", "zz", 1.5, {}],
        "mode": [None, "document", "lines", "pages", 1, []],
        "glossary": [None, {}, {"Hi": "Salut"}, {"": "x"}, {"a": 5}, ["x"], "x", {str(i): "y" for i in range(600)}],
        "model": [None, "", "gemma3-270m", "smollm2", "../x", "/etc/passwd", 5],
        "keep_quotes": [None, True, False, "yes", 1, []],
    }
    statuses = []
    for _ in range(60):
        body: dict = {"text": "Good morning.", "target": "fr", "source": "en"}
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(sorted(values))
            if rng.random() < 0.2:
                body.pop(key, None)
            else:
                body[key] = rng.choice(values[key])
        response = http.post("/v1/translations", json=body)
        statuses.append(response.status_code)
        assert response.status_code < 500, (body, response.text)
        if response.status_code != 200:
            assert response.json()["error"]["message"], response.text  # one line saying what is wrong
    assert any(s == 200 for s in statuses) and any(400 <= s < 500 for s in statuses)
    assert http.get("/health").json()["status"] == "ok"
