"""The official `openai` package against `llamadesk serve` with the smollm2 starter, on loopback."""

from __future__ import annotations

import json

import openai
import pytest

from tests.serve_process import MODEL, SYSTEM, serving

pytestmark = pytest.mark.slow

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module", params=[(), ("--parallel", "2")], ids=["one-at-a-time", "parallel"])
def server(request):
    # Every test runs against both ways of serving: one reply at a time, and decoded together.
    with serving(*request.param) as served:
        yield served


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=server.openai_url, api_key="unused", max_retries=0, timeout=120) as c:
        yield c


def ask(question: str) -> list[dict]:
    return [SYSTEM, {"role": "user", "content": question}]


def test_models_lists_the_served_model(client):
    assert MODEL in [m.id for m in client.models.list().data]


def test_a_model_is_retrieved_by_its_id(client):
    assert client.models.retrieve(MODEL).id == MODEL  # it was 404
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_chat_answers_and_counts_usage(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=ask("What is the capital of France?"), temperature=0, max_tokens=30
    )
    choice = reply.choices[0]
    assert "Paris" in choice.message.content
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert reply.usage.prompt_tokens > 10 and 0 < reply.usage.completion_tokens <= 30
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streaming_gives_the_same_text_as_a_whole_reply(client):
    messages = ask("Name three colours.")
    whole = client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=20)
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=messages,
            temperature=0,
            max_tokens=20,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_max_completion_tokens_ends_with_length(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=ask("Tell me a long story about a dragon."), temperature=0, max_completion_tokens=4
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 4


def test_a_stop_sequence_cuts_the_reply_before_it(client):
    messages = ask("Count from 1 to 20, separated by commas.")
    free = client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=40)
    text = free.choices[0].message.content
    stop = text[len(text) // 2 : len(text) // 2 + 3]  # from the middle of what the model says anyway
    cut = client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=40, stop=[stop])
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_the_same_seed_gives_the_same_sampled_reply(client):
    def sampled() -> str:
        reply = client.chat.completions.create(
            model=MODEL, messages=ask("Write a short poem."), temperature=1.0, top_p=1.0, seed=1234, max_tokens=25
        )
        return reply.choices[0].message.content

    assert sampled() == sampled()


def test_json_schema_output_parses_and_follows_the_schema(client):
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ask("Describe a person called Ada, 36 years old, as JSON."),
        temperature=0,
        max_tokens=100,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}},
    )
    person = json.loads(reply.choices[0].message.content)
    assert set(person) == {"name", "age"}
    assert isinstance(person["name"], str) and isinstance(person["age"], int)


def test_json_object_output_is_an_object(client):
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ask('Reply with a JSON object with the key "city" set to the capital of France.'),
        temperature=0,
        max_tokens=60,
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


def test_completions_continue_a_prompt(client):
    reply = client.completions.create(model=MODEL, prompt="The capital of France is", temperature=0, max_tokens=8)
    assert reply.choices[0].text.strip()
    assert reply.usage.completion_tokens <= 8 and reply.usage.prompt_tokens > 0
    streamed = client.completions.create(
        model=MODEL, prompt="The capital of France is", temperature=0, max_tokens=8, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == reply.choices[0].text


def test_an_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="no-such-model", messages=ask("hi"), max_tokens=2)


def test_n_above_one_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError, match="'n'"):
        client.chat.completions.create(model=MODEL, messages=ask("hi"), max_tokens=2, n=2)
