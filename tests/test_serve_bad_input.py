"""What a hostile or careless client sends: each a 4xx with a clear message, never a 500, and the
server keeps serving. Plus the key, and refusing to start exposed without one."""

from __future__ import annotations

import json
import random

import httpx
import ollama
import openai
import pytest

from tests.conftest import run_cli_process
from tests.serve_process import MODEL, serving

pytestmark = pytest.mark.slow

KEY = "test-key-0123456789abcdef"
MAX_TOKENS = 8  # the server's limit here, so fuzzed bodies that happen to be valid stay short
CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module", params=[(), ("--parallel", "2")], ids=["one-at-a-time", "parallel"])
def server(request):
    # Every test runs against both ways of serving: one reply at a time, and decoded together.
    with serving("--max-tokens", str(MAX_TOKENS), "--max-body-bytes", "65536", *request.param) as served:
        yield served


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


def post(http, path: str, body) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http.post(path, content=content, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe\x00",
        b"[1, 2, 3]",
        b'"a string"',
        b"[" * 50_000,  # nesting that would blow the recursion limit (under the body limit)
        b"",
    ],
    ids=["not-json", "not-utf8", "array", "string", "deep-nesting", "empty"],
)
def test_a_body_that_is_not_a_json_object_is_400(http, body):
    response = post(http, CHAT, body)
    assert response.status_code == 400
    assert response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": HI}, "model"),
        ({"model": 5, "messages": HI}, "model"),
        ({"model": MODEL}, "messages"),
        ({"model": MODEL, "messages": "hi"}, "messages"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL, "messages": [5]}, "messages[0]"),
        ({"model": MODEL, "messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"model": MODEL, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content",
        ),
        ({"model": MODEL, "messages": HI, "temperature": "hot"}, "temperature"),
        ({"model": MODEL, "messages": HI, "temperature": 9}, "temperature"),
        ({"model": MODEL, "messages": HI, "top_p": True}, "top_p"),
        ({"model": MODEL, "messages": HI, "max_tokens": 0}, "max_tokens"),
        ({"model": MODEL, "messages": HI, "max_tokens": MAX_TOKENS + 1}, "max_tokens"),
        ({"model": MODEL, "messages": HI, "max_tokens": 1.5}, "max_tokens"),
        ({"model": MODEL, "messages": HI, "seed": "x"}, "seed"),
        ({"model": MODEL, "messages": HI, "stream": "yes"}, "stream"),
        ({"model": MODEL, "messages": HI, "stop": [1]}, "stop"),
        ({"model": MODEL, "messages": HI, "n": 3}, "n"),
        ({"model": MODEL, "messages": HI, "tools": [{"type": "function"}]}, "tools"),
        ({"model": MODEL, "messages": HI, "tool_choice": "required"}, "tool_choice"),
        (
            {"model": MODEL, "messages": HI, "tool_choice": {"type": "function", "function": {"name": "f"}}},
            "tool_choice",
        ),
        ({"model": MODEL, "messages": HI, "function_call": {"name": "f"}}, "function_call"),
        ({"model": MODEL, "messages": HI, "response_format": {"type": "xml"}}, "response_format"),
        ({"model": MODEL, "messages": HI, "response_format": {"type": "json_schema"}}, "json_schema"),
    ],
)
def test_wrong_fields_are_400_naming_the_field(http, body, field):
    response = post(http, CHAT, body)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "name", ["no-such-model", "../../etc/passwd", "/etc/passwd", "smollm2/../../x.gguf", "./README.md", "README.md"]
)
def test_unknown_and_path_like_model_names_are_404_and_never_read(http, name):
    response = post(http, CHAT, {"model": name, "messages": HI})
    assert response.status_code == 404
    assert "does not exist" in response.json()["error"]["message"]


def test_a_huge_body_is_413(http):
    huge = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x" * 100_000}]}).encode()
    assert post(http, CHAT, huge).status_code == 413
    # Without Content-Length (chunked), the limit holds while reading.
    response = http.post(
        CHAT, content=iter([huge[:40_000], huge[40_000:]]), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


def test_a_prompt_longer_than_the_context_is_400(http):
    long = " ".join(["word"] * 3000)  # ~3000 tokens in a 2048-token context, under the body limit
    response = post(http, CHAT, {"model": MODEL, "messages": [{"role": "user", "content": long}], "stream": True})
    assert response.status_code == 400
    assert "context" in response.json()["error"]["message"]


def test_an_invalid_schema_is_400(http):
    schema = {"type": "object", "properties": {"x": {"$ref": "#/nowhere"}}}
    body = {
        "model": MODEL,
        "messages": HI,
        "response_format": {"type": "json_schema", "json_schema": {"schema": schema}},
    }
    assert post(http, CHAT, body).status_code == 400


def test_a_schema_whose_bounds_would_crash_llama_cpp_is_400_and_the_server_lives(http):
    # maxLength 20000 became 20,000 nested groups; llama.cpp's grammar parser overflowed its stack.
    for schema in ({"type": "string", "maxLength": 20000}, {"type": "string", "pattern": "^a{0,20000}$"}):
        response = post(http, "/api/chat", {"model": MODEL, "messages": HI, "stream": False, "format": schema})
        assert response.status_code == 400 and ("at most" in response.text or "0 to 500" in response.text)
    bad_shape = {"type": "object", "properties": {"a": 5}}
    body = {
        "model": MODEL,
        "messages": HI,
        "response_format": {"type": "json_schema", "json_schema": {"schema": bad_shape}},
    }
    assert post(http, CHAT, body).status_code == 400
    assert http.get("/health").status_code == 200


def test_a_lone_surrogate_in_a_model_name_is_a_4xx_in_json(http):
    for path in (CHAT, "/api/chat"):
        response = http.post(path, content=b'{"model": "\\ud800", "messages": [{"role": "user", "content": "Hi"}]}')
        assert response.status_code in (400, 404) and response.json()


def test_half_a_character_anywhere_in_a_request_is_400_not_500(http):
    # In a schema's pattern it reached the grammar check's encode(): a 500 and a traceback.
    schema = {"type": "string", "pattern": "^PLACEHOLDER$"}
    openai_body = {"model": MODEL, "messages": HI, "max_tokens": 3}
    openai_body["response_format"] = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    ollama_body = {"model": MODEL, "messages": HI, "stream": False, "format": schema}
    for path, body in ((CHAT, openai_body), ("/api/chat", ollama_body)):
        raw = json.dumps(body).replace("PLACEHOLDER", "\\ud800").encode()
        response = post(http, path, raw)
        assert response.status_code == 400, response.text
        assert "without its pair" in response.text


def test_structured_output_that_would_hold_the_model_for_minutes_is_400(http):
    # (a{0,10}b?){0,50}: llama.cpp's grammar took 25 s a token in a C call no stop reaches; a client
    # that left did not free the model, and every other request waited.
    for schema in (
        {"type": "string", "pattern": "^(a{0,10}b?){0,50}$"},
        {"type": "string", "pattern": "^((a{0,80}){0,80})$"},
    ):
        response = post(http, "/api/chat", {"model": MODEL, "messages": HI, "stream": False, "format": schema})
        assert response.status_code == 400 and "can match nothing" in response.json()["error"], response.text


def test_keep_alive_is_checked_whatever_the_request_asks(http):
    for path, body in (
        ("/api/chat", {"model": MODEL, "messages": HI, "keep_alive": [1], "stream": False}),
        ("/api/generate", {"model": MODEL, "prompt": "hi", "keep_alive": {"x": 1}, "stream": False}),
    ):
        response = post(http, path, body)
        assert response.status_code == 400 and "keep_alive" in response.json()["error"], response.text


def test_an_unknown_model_under_the_ollama_api_points_at_its_listing(http):
    response = post(http, "/api/chat", {"model": "llama3.2:1b", "messages": HI})
    assert response.status_code == 404 and "/api/tags" in response.json()["error"]


def test_a_number_too_long_for_python_is_said_in_a_client_s_words(http):
    raw = b'{"model": "' + MODEL.encode() + b'", "messages": [], "max_tokens": 1' + b"0" * 5000 + b"}"
    message = post(http, CHAT, raw).json()["error"]["message"]
    assert "thousands of digits" in message and "sys.set_int_max_str_digits" not in message


def test_unserved_fields_are_refused_not_ignored(http):
    response = post(http, CHAT, {"model": MODEL, "messages": HI, "logit_bias": {"19556": -100}})
    assert response.status_code == 400 and "logit_bias" in response.json()["error"]["message"]
    with_image = [{"role": "user", "content": "Describe the picture.", "images": ["aGVsbG8="]}]
    response = post(http, "/api/chat", {"model": MODEL, "messages": with_image, "stream": False})
    assert response.status_code == 400 and "images" in response.json()["error"]


def test_ollama_errors_are_in_ollama_shape(server, http):
    response = post(http, "/api/chat", {"model": MODEL, "messages": HI, "format": 5})
    assert response.status_code == 400 and "format" in response.json()["error"]
    response = post(http, "/api/generate", {"model": MODEL, "prompt": "x", "options": {"temperature": "x"}})
    assert response.status_code == 400 and "options.temperature" in response.json()["error"]
    with pytest.raises(ollama.ResponseError) as raised:
        ollama.Client(host=server.url).chat(model="../secret", messages=HI)
    assert raised.value.status_code == 404


def test_unknown_paths_and_methods_are_4xx_in_json(http):
    assert http.get("/v1/nothing").status_code == 404
    assert http.get(CHAT).status_code == 405
    assert "error" in http.get("/v1/nothing").json()


def test_show_and_retrieve_refuse_what_names_no_model(http):
    for body in ({}, {"model": 5}, {"model": ""}, {"name": ["x"]}, {"model": "x" * 300}):
        response = post(http, "/api/show", body)
        assert response.status_code == 400 and (
            "'model'" in response.json()["error"] or "'name'" in response.json()["error"]
        ), body
    for name in ("no-such-model", "../etc/passwd", "%2e%2e%2fx"):
        response = post(http, "/api/show", {"model": name})
        assert response.status_code == 404, name
        assert http.get(f"/v1/models/{name}").status_code == 404, name


def test_no_cors_headers_unless_asked(http):
    response = http.get("/v1/models", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in response.headers


def test_fuzzed_request_bodies_never_get_a_500(http):
    """Random mutations of valid bodies (seeded, bounded): every answer is a 2xx or a 4xx."""
    rng = random.Random(1234)
    values = [None, True, -1, 0, 1, 2.5, 1e308, -1e308, "", "x", "smollm2", [], [1], {}, {"a": 1}, HI, "../x"]
    keys = ["model", "messages", "temperature", "top_p", "max_tokens", "seed", "stop", "stream", "n",
            "response_format", "max_completion_tokens", "stream_options", "prompt", "options", "format"]  # fmt: skip
    statuses = []
    for _ in range(150):
        path = rng.choice([CHAT, "/v1/completions", "/api/chat", "/api/generate", "/api/show"])
        body: dict = {"model": MODEL, "messages": HI, "prompt": "Hi", "max_tokens": 2, "options": {"num_predict": 2}}
        for _ in range(rng.randint(1, 4)):
            key = rng.choice(keys)
            if rng.random() < 0.2:
                body.pop(key, None)
            else:
                body[key] = rng.choice(values)
        response = post(http, path, body)
        statuses.append(response.status_code)
        assert response.status_code < 500, (path, body, response.text)
    assert any(s == 200 for s in statuses) and any(400 <= s < 500 for s in statuses)
    assert http.get("/health").json()["status"] == "ok"


# -- the API key ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed():
    with serving("--max-tokens", str(MAX_TOKENS), env={"LLAMADESK_API_KEY": KEY}) as served:
        yield served


def test_without_the_key_openai_raises_authentication_error(keyed):
    for key in ("wrong-key-0123456789", KEY[:-1]):
        with openai.OpenAI(base_url=keyed.openai_url, api_key=key, max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError):
                client.models.list()
    assert httpx.post(f"{keyed.url}{CHAT}", json={"model": MODEL, "messages": HI}).status_code == 401
    with pytest.raises(ollama.ResponseError) as raised:
        ollama.Client(host=keyed.url).list()
    assert raised.value.status_code == 401


def test_with_the_key_both_clients_work_and_health_needs_none(keyed):
    with openai.OpenAI(base_url=keyed.openai_url, api_key=KEY, max_retries=0, timeout=120) as client:
        assert client.chat.completions.create(model=MODEL, messages=HI, max_tokens=2).choices[0].message
    assert MODEL in [
        m.model for m in ollama.Client(host=keyed.url, headers={"Authorization": f"Bearer {KEY}"}).list().models
    ]
    assert httpx.get(f"{keyed.url}/health").status_code == 200


# -- refusing to start ---------------------------------------------------------------------------


def test_a_non_loopback_bind_without_a_key_is_refused_with_one_line():
    result = run_cli_process("serve", "--host", "0.0.0.0", "--port", "1", timeout=60, env={"LLAMADESK_API_KEY": ""})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--api-key" in result.stderr


def test_a_short_key_is_refused():
    result = run_cli_process("serve", "--api-key", "short", "--port", "1", timeout=60)
    assert result.returncode == 2 and "shorter" in result.stderr


def test_a_key_that_is_not_ascii_is_refused_at_start():
    result = run_cli_process(
        "serve", "--port", "1", timeout=60, env={"LLAMADESK_API_KEY": "clé-très-secrète-0123456789"}
    )
    assert result.returncode == 2 and "printable ASCII" in result.stderr and result.stderr.count("\n") == 1
