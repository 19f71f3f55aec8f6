"""`llamadesk serve --parallel N`: replies to concurrent clients decoded together, with real clients.

Which replies share a llama_decode changes llama.cpp's arithmetic a little (bench/RESULTS.md
"batch numerics"), so these tests assert what must hold whatever the company: the replies really
overlapped (the server's in_flight count), each is whole and well-formed, each keeps its own
grammar, stop strings and token budget, a client that leaves frees only its own sequence, another
model waits for the replies in flight unless both are kept in memory, and SIGTERM ends every
stream with an error its client raises (a reply cut short is never taken for a whole one).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import ollama
import openai
import pytest

from tests.conftest import run_cli
from tests.serve_clients import run_clients, start_streaming_client
from tests.serve_process import MODEL, SYSTEM, serving, wait_until

pytestmark = pytest.mark.slow

PARALLEL = ("--parallel", "4", "--threads", "1")
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def health(server) -> dict:
    return httpx.get(f"{server.url}/health", timeout=10).json()


class InFlightPeak:
    """Polls /health while a block runs: the most replies the server had in flight at once."""

    def __init__(self, server):
        self._server = server
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll)

    def _poll(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, health(self._server).get("in_flight", 0))
            time.sleep(0.02)

    def __enter__(self) -> InFlightPeak:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join(30)


@pytest.fixture(scope="module")
def server():
    with serving(*PARALLEL) as served:
        yield served


def openai_client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0, timeout=300)


def test_four_clients_are_decoded_together_and_each_keeps_its_own_settings(server):
    def streamed() -> None:
        with openai_client(server) as client:
            chunks = list(
                client.chat.completions.create(
                    model=MODEL,
                    messages=[SYSTEM, {"role": "user", "content": "Write a short poem about rivers."}],
                    max_tokens=40,
                    temperature=0,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finishes in (["stop"], ["length"]), finishes
        assert 0 < chunks[-1].usage.completion_tokens <= 40

    def json_schema() -> None:
        with openai_client(server) as client:
            reply = client.chat.completions.create(
                model=MODEL,
                messages=[SYSTEM, {"role": "user", "content": "Invent a person. Answer in JSON."}],
                max_tokens=100,  # as test_serve_openai's: room for the whole object
                temperature=0,
                response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}},
            )
        person = json.loads(reply.choices[0].message.content)
        assert set(person) == {"name", "age"} and isinstance(person["name"], str) and isinstance(person["age"], int)

    def stopped() -> None:
        with openai_client(server) as client:
            reply = client.completions.create(
                model=MODEL, prompt="1, 2, 3, 4, 5,", max_tokens=40, temperature=0, stop=["8"]
            )
        assert "8" not in reply.choices[0].text and reply.choices[0].finish_reason == "stop"

    def ollama_stream() -> None:
        parts = list(
            ollama.Client(host=server.url, timeout=300).chat(
                model=MODEL,
                messages=[{"role": "user", "content": "Name three colours."}],
                options={"num_predict": 30, "temperature": 0},
                stream=True,
            )
        )
        assert [p.done for p in parts].count(True) == 1 and parts[-1].done and 0 < parts[-1].eval_count <= 30

    with InFlightPeak(server) as watch, ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(task) for task in (streamed, json_schema, stopped, ollama_stream)]
        for future in futures:
            future.result(timeout=300)  # re-raises a client's failed assertion
    assert watch.peak >= 2, "the replies never overlapped"
    assert health(server) == {
        "status": "ok",
        "model": MODEL,
        "loaded": [MODEL],
        "busy": False,
        "queued": 0,
        "parallel": 4,
        "in_flight": 0,
    }


def test_eight_clients_send_a_hundred_requests_without_an_error(server):
    # OpenAI, Ollama and translations, streamed and whole (test_serve_load's mix), four decoded at a time.
    with InFlightPeak(server) as watch:
        errors = run_clients(server, range(96))
    assert errors == [], f"{len(errors)} errors: {errors[:5]}"
    assert watch.peak >= 2 and health(server)["in_flight"] == 0


def test_a_client_that_leaves_frees_only_its_own_sequence(server):
    leaving = start_streaming_client(server)
    staying = start_streaming_client(server)
    wait_until(lambda: health(server)["in_flight"] == 2, timeout=30)
    os.kill(leaving.pid, signal.SIGKILL)
    leaving.wait(10)
    assert wait_until(lambda: health(server)["in_flight"] == 1, timeout=5) < 0.5
    for _ in range(5):  # the other reply goes on streaming
        assert staying.stdout.readline() == "chunk\n"
    os.kill(staying.pid, signal.SIGKILL)
    staying.wait(10)
    wait_until(lambda: not health(server)["busy"], timeout=5)


# Ten one-sentence paragraphs: ten segments, a few seconds of work for the starter.
DOCUMENT = "\n\n".join(
    [
        "The server keeps running while you read this.",
        "Please save your work before closing the window.",
        "Your order has been shipped and will arrive on Monday.",
        "Click the button below to reset your password.",
        "The file could not be opened because it is damaged.",
        "Thank you for using our application.",
        "The meeting has been moved to Thursday afternoon.",
        "Your account will be deleted in seven days.",
        "Check your spelling and try again.",
        "A new version is ready to install.",
    ]
)
TRANSLATION = {"text": DOCUMENT, "source": "en", "target": "fr", "model": MODEL}  # the chat model: no switch

TRANSLATING_CLIENT = f"""
import sys, httpx
httpx.post(sys.argv[1] + "/v1/translations", json={TRANSLATION!r}, timeout=300)
"""


def test_a_translation_runs_beside_the_replies_instead_of_holding_them_up(server):
    translated: dict = {}

    def translate() -> None:
        response = httpx.post(f"{server.url}/v1/translations", json=TRANSLATION, timeout=300)
        translated.update(status=response.status_code, body=response.json(), ended=time.monotonic())

    with InFlightPeak(server) as watch:
        translator = threading.Thread(target=translate)
        translator.start()
        wait_until(lambda: health(server)["in_flight"] >= 1, timeout=60)
        with openai_client(server) as client:
            reply = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=8, temperature=0
            )
        answered = time.monotonic()
        translator.join(300)
    assert reply.choices[0].message.content and reply.usage.completion_tokens <= 8
    assert translated["status"] == 200, translated["body"]
    # The reply did not wait for the document: it came back while the translation was still going.
    assert answered < translated["ended"] and watch.peak >= 2
    segments = translated["body"]["segments"]
    assert [s["source"] for s in segments] == DOCUMENT.split("\n\n")
    assert all(s["translation"].strip() for s in segments)
    assert translated["body"]["text"].count("\n\n") == 9  # the paragraphs, in their order
    assert health(server)["in_flight"] == 0


def test_a_client_that_leaves_stops_its_translation_and_no_one_elses_reply(server):
    staying = start_streaming_client(server)
    leaving = subprocess.Popen([sys.executable, "-c", TRANSLATING_CLIENT, server.url])
    wait_until(lambda: health(server)["in_flight"] == 2, timeout=60)
    time.sleep(0.5)  # its segments are being decoded beside the reply
    os.kill(leaving.pid, signal.SIGKILL)
    leaving.wait(10)
    assert wait_until(lambda: health(server)["in_flight"] == 1, timeout=5) < 0.5
    for _ in range(5):  # the reply goes on streaming
        assert staying.stdout.readline() == "chunk\n"
    os.kill(staying.pid, signal.SIGKILL)
    staying.wait(10)
    wait_until(lambda: not health(server)["busy"], timeout=5)
    assert "POST /v1/translations 499" in server.log_text()


class LongStream:
    """A streamed story on the chat model, read on a thread of its own: its SSE data lines, and when it ended."""

    def __init__(self, served, max_tokens: int):
        self.events: list[str] = []
        self.ended: list[float] = []
        body = {
            "model": MODEL,
            "messages": [SYSTEM, {"role": "user", "content": "Write a long story about a dragon."}],
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
        }

        def read() -> None:
            with httpx.stream("POST", f"{served.url}/v1/chat/completions", json=body, timeout=300) as r:
                for line in r.iter_lines():
                    if line.startswith("data:"):
                        self.events.append(line.removeprefix("data:").strip())
            self.ended.append(time.monotonic())

        self.reader = threading.Thread(target=read)
        self.reader.start()
        wait_until(lambda: len(self.events) >= 3, timeout=60)


def ask_the_other_model(served) -> openai.types.chat.ChatCompletion:
    with openai_client(served) as client:
        return client.chat.completions.create(
            model="other", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0
        )


def test_another_model_waits_for_the_replies_in_flight(smollm2_path, tmp_path):
    other = tmp_path / "other.gguf"
    other.symlink_to(smollm2_path)
    with serving(*PARALLEL, "-m", str(other)) as served:
        long = LongStream(served, max_tokens=64)
        reply = ask_the_other_model(served)
        answered = time.monotonic()
        long.reader.join(60)
        assert long.ended and long.ended[0] <= answered  # the first reply ran to its end before the switch
        assert long.events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in long.events[:-1]]
        finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]]
        assert finish in (["stop"], ["length"])
        assert reply.usage.completion_tokens <= 4 and health(served)["model"] == "other"


def test_a_model_kept_beside_the_first_answers_while_the_first_still_streams(smollm2_path, tmp_path):
    other = tmp_path / "other.gguf"
    other.symlink_to(smollm2_path)
    with serving(*PARALLEL, "--max-models", "2", "-m", str(other)) as served:
        long = LongStream(served, max_tokens=400)
        reply = ask_the_other_model(served)
        # Both models are in memory, so the second did not wait for the first reply to end.
        streamed_meanwhile = not long.ended
        status = health(served)
        long.reader.join(300)
        assert streamed_meanwhile and reply.usage.completion_tokens <= 4
        assert sorted(status["loaded"]) == sorted([MODEL, "other"]) and status["in_flight"] >= 1
        assert long.events[-1] == "[DONE]"


def test_sigterm_during_parallel_streams_and_a_translation_tells_each_client_it_is_incomplete():
    with serving(*PARALLEL) as served:
        ask = [SYSTEM, {"role": "user", "content": "Write a very long essay about the sea."}]
        streams: list[list] = [[], []]  # each: the chunks, then the error its client raised

        def openai_stream(seen: list) -> None:
            with openai_client(served) as client:
                try:
                    seen.extend(client.chat.completions.create(model=MODEL, messages=ask, max_tokens=2000, stream=True))
                except openai.APIError as err:
                    seen.append(err)

        def ollama_stream(seen: list) -> None:
            client = ollama.Client(host=served.url, timeout=120)
            try:
                seen.extend(client.chat(model=MODEL, messages=ask, options={"num_predict": 2000}, stream=True))
            except ollama.ResponseError as err:
                seen.append(err)

        translated: list[httpx.Response] = []

        def translate() -> None:
            translated.append(httpx.post(f"{served.url}/v1/translations", json=TRANSLATION, timeout=120))

        readers = [
            threading.Thread(target=openai_stream, args=(streams[0],)),
            threading.Thread(target=ollama_stream, args=(streams[1],)),
            threading.Thread(target=translate),
        ]
        for reader in readers:
            reader.start()
        wait_until(lambda: all(len(seen) >= 3 for seen in streams), timeout=60)
        wait_until(lambda: health(served)["in_flight"] == 3, timeout=60)  # the translation too
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=30) == 0
        for reader in readers:
            reader.join(30)
            assert not reader.is_alive()
        # Each client raises rather than taking the text so far for a whole reply.
        cut = "the server shut down before the reply was complete"
        from_openai, from_ollama = streams
        assert isinstance(from_openai[-1], openai.APIError) and from_openai[-1].body["message"] == cut
        assert all(chunk.choices[0].finish_reason is None for chunk in from_openai[:-1])
        assert isinstance(from_ollama[-1], ollama.ResponseError) and from_ollama[-1].error == cut
        assert not any(part.done for part in from_ollama[:-1])
        # Its segments were stopped with the replies: a 503 saying so, not a cut connection.
        [response] = translated
        assert response.status_code == 503 and int(response.headers["retry-after"]) > 0
        assert response.json()["error"]["message"] == "the server shut down before the translation was complete"


def test_parallel_must_be_a_sensible_count():
    result = run_cli("serve", "--parallel", "0")
    assert result.returncode == 2 and result.stderr.strip() == "llamadesk: --parallel must be between 1 and 64"


def test_replies_that_together_outgrow_the_cache_all_complete():
    # Two prompts of ~300 tokens in a 512-token cache shared by two slots: one waits for the other.
    with serving(*PARALLEL, "--ctx", "512") as served:
        words = " ".join(f"item{n}" for n in range(90))

        def ask(topic: str) -> openai.types.chat.ChatCompletion:
            with openai_client(served) as client:
                return client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": f"{topic}: {words}. Summarise the list."}],
                    max_tokens=16,
                    temperature=0,
                )

        with ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(ask, ["Fruits", "Tools"]))
        for reply in replies:
            assert reply.usage.prompt_tokens > 256 and reply.usage.completion_tokens == 16
            assert reply.choices[0].finish_reason == "length"
        assert health(served)["in_flight"] == 0
