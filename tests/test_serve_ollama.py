"""The official `ollama` package against `llamadesk serve` with the smollm2 starter, on loopback."""

from __future__ import annotations

import json

import httpx
import ollama
import pytest

from tests.serve_process import MODEL, SYSTEM, serving

pytestmark = pytest.mark.slow

GREEDY = {"temperature": 0, "num_predict": 30}


@pytest.fixture(scope="module", params=[(), ("--parallel", "2")], ids=["one-at-a-time", "parallel"])
def server(request):
    # Every test runs against both ways of serving: one reply at a time, and decoded together.
    with serving(*request.param) as served:
        yield served


@pytest.fixture(scope="module")
def client(server):
    return ollama.Client(host=server.url, timeout=120)


def ask(question: str) -> list[dict]:
    return [SYSTEM, {"role": "user", "content": question}]


def test_list_shows_the_model_with_its_details(client):
    models = {m.model: m for m in client.list().models}
    assert MODEL in models
    assert models[MODEL].size > 0 and models[MODEL].details.format == "gguf"
    assert models[MODEL].details.quantization_level == "Q4_1"


def test_show_gives_the_template_and_context_and_ps_the_models_in_memory(client):
    # oterm and `ollama show` ask these; they were 404.
    shown = client.show(MODEL)
    assert shown.details.format == "gguf" and shown.details.quantization_level == "Q4_1"
    assert "im_start" in shown.template  # SmolLM2's chat template
    assert shown.modelinfo["llama.context_length"] == 8192 and shown.modelinfo["general.architecture"] == "llama"
    assert client.show(f"{MODEL}:latest").template == shown.template
    client.chat(model=MODEL, messages=ask("Hi"), options={"num_predict": 1})
    assert MODEL in [m.model for m in client.ps().models]
    with pytest.raises(ollama.ResponseError) as err:
        client.show("no-such-model")
    assert err.value.status_code == 404


def test_version_answers(server):
    assert httpx.get(f"{server.url}/api/version").json()["version"]


def test_chat_answers(client):
    reply = client.chat(model=MODEL, messages=ask("What is the capital of France?"), options=GREEDY)
    assert "Paris" in reply.message.content
    assert reply.done and reply.done_reason == "stop" and reply.eval_count > 0 and reply.prompt_eval_count > 10


def test_chat_streams_by_the_line_to_the_same_text(client):
    messages = ask("Name three colours.")
    whole = client.chat(model=MODEL, messages=messages, options=GREEDY)
    parts = list(client.chat(model=MODEL, messages=messages, options=GREEDY, stream=True))
    assert "".join(p.message.content for p in parts) == whole.message.content
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert parts[-1].eval_count == whole.eval_count


def test_model_name_with_the_latest_tag_is_the_same_model(client):
    reply = client.chat(model=f"{MODEL}:latest", messages=ask("Say hi."), options={"num_predict": 3})
    assert reply.model == MODEL


def test_generate_streams_ndjson_by_default(server, client):
    with httpx.stream(
        "POST",
        f"{server.url}/api/generate",
        json={"model": MODEL, "prompt": "Say hi.", "options": {"num_predict": 5}},
        timeout=120,
    ) as response:
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert lines[-1]["done"] is True and all(not line["done"] for line in lines[:-1])
    reply = client.generate(model=MODEL, prompt="What is the capital of France?", options=GREEDY)
    assert "Paris" in reply.response


def test_format_schema_gives_json_that_follows_it(client):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    reply = client.chat(
        model=MODEL, messages=ask("What is the capital of France? Answer in JSON."), format=schema, options=GREEDY
    )
    assert isinstance(json.loads(reply.message.content)["city"], str)


def test_an_unknown_model_is_a_404_response_error(client):
    with pytest.raises(ollama.ResponseError) as raised:
        client.chat(model="no-such-model", messages=ask("hi"))
    assert raised.value.status_code == 404 and "does not exist" in raised.value.error


def test_generate_on_a_base_model_continues_the_prompt_and_switching_back_works(client):
    options = {**GREEDY, "num_predict": 6}
    reply = client.generate(model="gemma3-270m", prompt="The capital of France is", options=options)
    assert reply.response.strip() and reply.done
    again = client.chat(model=MODEL, messages=ask("What is the capital of France?"), options=GREEDY)
    assert "Paris" in again.message.content


def test_keep_alive_zero_unloads_the_model_and_an_empty_request_loads_it(client, server):
    loaded = client.generate(model=MODEL)  # what `ollama run` sends first
    assert loaded.done_reason == "load" and MODEL in httpx.get(f"{server.url}/health").json()["loaded"]
    unloaded = client.generate(model=MODEL, keep_alive=0)  # what `ollama stop` sends
    assert unloaded.done_reason == "unload" and httpx.get(f"{server.url}/health").json()["loaded"] == []
    reply = client.chat(model=MODEL, messages=ask("What is the capital of France?"), options=GREEDY)
    assert "Paris" in reply.message.content  # loaded again for the next request
