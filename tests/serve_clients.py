"""Real clients of `llamadesk serve` shared by the server's tests: the OpenAI, Ollama and translation
mix that load tests send, and a client in its own process that streams until it is killed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import httpx
import ollama
import openai

from tests.serve_process import MODEL

CLIENTS = 8


def one_request(server, n: int) -> None:
    """Request number n: every tenth a translation (llamadesk's own endpoint), the others OpenAI or
    Ollama, streamed or whole (n % 4); raises on anything ill-formed."""
    messages = [{"role": "user", "content": f"Say the number {n}."}]
    if n % 10 == 9:
        body = {"text": f"Good morning, number {n}.", "source": "en", "target": "fr", "model": MODEL}
        response = httpx.post(f"{server.url}/v1/translations", json=body, timeout=300)
        assert response.status_code == 200, response.text
        [segment] = response.json()["segments"]
        assert segment["source"] == body["text"] and segment["translation"].strip()
        return
    kind = n % 4
    if kind < 2:
        with openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0, timeout=300) as client:
            if kind == 0:
                reply = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=2)
                assert reply.choices[0].finish_reason in ("stop", "length") and reply.usage.completion_tokens <= 2
                return
            chunks = list(
                client.chat.completions.create(
                    model=MODEL,
                    messages=messages,
                    max_tokens=2,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
            finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
            assert finishes in (["stop"], ["length"]), finishes  # exactly one, in the last choice chunk
            assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 2
            return
    client = ollama.Client(host=server.url, timeout=300)
    if kind == 2:
        reply = client.chat(model=MODEL, messages=messages, options={"num_predict": 2})
        assert reply.done and reply.done_reason in ("stop", "length")
        return
    parts = list(client.chat(model=MODEL, messages=messages, options={"num_predict": 2}, stream=True))
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done and parts[-1].eval_count <= 2


def run_clients(server, numbers: range) -> list[str]:
    """`numbers` split among CLIENTS threads; the errors, as text."""
    errors: list[str] = []

    def client(k: int) -> None:
        for n in numbers[k::CLIENTS]:
            try:
                one_request(server, n)
            except Exception as err:  # counted: the assertion says how many and which
                errors.append(f"request {n}: {type(err).__name__}: {err}")

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client, range(CLIENTS)))
    return errors


# A client in its own process, streaming a long reply and printing a line per chunk, so the test
# knows it is mid-stream before it kills it.
STREAMING_CLIENT = textwrap.dedent(
    """
    import sys, openai
    client = openai.OpenAI(base_url=sys.argv[1], api_key="x", max_retries=0, timeout=300)
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Write a very long essay about the history of Europe."}]
    for chunk in client.chat.completions.create(model=sys.argv[2], messages=messages, max_tokens=2000,
                                                temperature=0, stream=True):
        print("chunk", flush=True)
    """
)


def start_streaming_client(server) -> subprocess.Popen:
    client = subprocess.Popen(
        [sys.executable, "-c", STREAMING_CLIENT, server.openai_url, MODEL], stdout=subprocess.PIPE, text=True
    )
    for _ in range(3):  # three chunks: the reply is being generated
        assert client.stdout.readline() == "chunk\n"
    return client
