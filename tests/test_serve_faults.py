"""Faults through `llamadesk serve`: clients that leave, a full queue, SIGTERM, a memory budget (load: test_serve_load).

Loopback only, every loop bounded.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.serve_process import MODEL, SYSTEM, serving, wait_until

pytestmark = pytest.mark.slow

QUEUE_SIZE = 3
LONG = {
    "model": MODEL,
    "messages": [SYSTEM, {"role": "user", "content": "Write a very long essay about the history of Europe."}],
    "max_tokens": 2000,
    "temperature": 0,
    "stream": True,
}


@pytest.fixture(scope="module")
def server():
    with serving("--queue-size", str(QUEUE_SIZE)) as served:
        yield served


def health(server) -> dict:
    return httpx.get(f"{server.url}/health", timeout=10).json()


def read_some_events(response: httpx.Response, n: int, then=lambda: None) -> None:
    """Read `n` SSE events, then call `then` while the stream is still open (leaving the loop over
    iter_lines closes httpx's connection: the client is gone from there on)."""
    seen = 0
    for line in response.iter_lines():
        seen += line.startswith("data:")
        if seen >= n:
            then()
            return


def short_reply(server) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)


def test_a_client_that_leaves_mid_stream_frees_the_model_within_half_a_second(server):
    with httpx.Client(timeout=120) as http, http.stream("POST", f"{server.url}/v1/chat/completions", json=LONG) as r:
        busy = []
        read_some_events(r, 3, then=lambda: busy.append(health(server)["busy"]))
        assert busy == [True]
    # Leaving the blocks closed the connection with the reply far from done.
    assert wait_until(lambda: not health(server)["busy"], timeout=5) < 0.5
    started = time.monotonic()
    assert short_reply(server).status_code == 200
    assert time.monotonic() - started < 10  # served at once, not after a 2000-token essay


def test_an_ollama_client_that_leaves_mid_stream_frees_the_model_too(server):
    body = {"model": MODEL, "messages": LONG["messages"], "options": {"num_predict": 2000}}
    with httpx.Client(timeout=120) as http, http.stream("POST", f"{server.url}/api/chat", json=body) as r:
        for n, _ in enumerate(r.iter_lines()):
            if n >= 2:
                assert health(server)["busy"]
                break  # closes the connection
    assert wait_until(lambda: not health(server)["busy"], timeout=5) < 0.5


def test_a_full_queue_answers_503_with_retry_after_and_the_waiting_are_served(server):
    with httpx.Client(timeout=120) as http, http.stream("POST", f"{server.url}/v1/chat/completions", json=LONG) as r:
        with ThreadPoolExecutor(QUEUE_SIZE) as pool:
            waiting = []
            refused: list[httpx.Response] = []

            def fill_the_queue() -> None:
                waiting.extend(pool.submit(short_reply, server) for _ in range(QUEUE_SIZE))
                wait_until(lambda: health(server)["queued"] == QUEUE_SIZE, timeout=30)
                refused.append(short_reply(server))

            read_some_events(r, 2, then=fill_the_queue)
            # Out of the loop: the long reply's client has left, and the queue drains.
            assert refused[0].status_code == 503
            assert int(refused[0].headers["retry-after"]) > 0
            assert "busy" in refused[0].json()["error"]["message"]
            assert [f.result(timeout=120).status_code for f in waiting] == [200] * QUEUE_SIZE


def test_clients_that_leave_the_queue_free_their_places_for_others(server):
    # A waiting request whose client left kept its place until the worker reached it: QUEUE_SIZE
    # such requests made every other client get 503 "busy" for as long as the reply in progress ran.
    with httpx.Client(timeout=120) as http, http.stream("POST", f"{server.url}/v1/chat/completions", json=LONG) as r:
        statuses: list[int] = []

        def leave_then_ask() -> None:
            for _ in range(QUEUE_SIZE):  # each waits a second in the queue and hangs up
                with pytest.raises(httpx.ReadTimeout):
                    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
                    httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=1)
            wait_until(lambda: health(server)["queued"] == 0, timeout=5)
            assert health(server)["busy"]  # the long reply still runs
            with ThreadPoolExecutor(1) as pool:
                asked = pool.submit(short_reply, server)
                wait_until(lambda: health(server)["queued"] == 1, timeout=10)
                r.close()  # the long reply's client leaves too: the one waiting is served
                statuses.append(asked.result(timeout=120).status_code)

        read_some_events(r, 2, then=leave_then_ask)
    assert statuses == [200]


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_sigterm_during_a_reply_tells_the_openai_client_it_is_incomplete_and_exits_0(stream):
    with serving() as served:
        seen: list = []  # the chunks (or the whole reply), then the error the client raised

        def ask() -> None:
            with openai.OpenAI(base_url=served.openai_url, api_key="x", max_retries=0, timeout=120) as client:
                try:
                    reply = client.chat.completions.create(
                        model=MODEL, messages=LONG["messages"], max_tokens=2000, temperature=0, stream=stream
                    )
                    seen.extend(reply if stream else [reply])
                except openai.APIError as err:
                    seen.append(err)

        reader = threading.Thread(target=ask)
        reader.start()
        if stream:
            wait_until(lambda: len(seen) >= 3, timeout=60)  # the role chunk, then text: it is mid-reply
        else:
            wait_until(lambda: health(served)["busy"], timeout=60)
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=30) == 0
        reader.join(30)
        assert not reader.is_alive()
        # Not a reply that looks whole: the client raises, saying why and that a retry may work.
        error = seen[-1]
        assert isinstance(error, openai.APIError), seen[-1]
        assert error.body["message"] == "the server shut down before the reply was complete"
        if stream:
            assert seen[1:-1] and all(chunk.choices[0].finish_reason is None for chunk in seen[:-1])
        else:
            assert isinstance(error, openai.APIStatusError) and error.status_code == 503
            assert int(error.response.headers["retry-after"]) > 0


def test_a_memory_budget_serves_what_fits_and_refuses_what_does_not_with_a_clear_error():
    # With the pinned 2048-token context smollm2 takes ~240 MiB and gemma3-270m ~790 MiB (its 262k
    # vocabulary's logits buffer): a 300 MiB budget holds the first and can never hold the second.
    with serving("--memory-budget", "300M") as served:
        with openai.OpenAI(base_url=served.openai_url, api_key="x", max_retries=0, timeout=120) as client:
            ask = [{"role": "user", "content": "Hi"}]
            assert client.chat.completions.create(model=MODEL, messages=ask, max_tokens=2).choices
            with pytest.raises(openai.APIStatusError) as refused:
                client.chat.completions.create(model="gemma3-270m", messages=ask, max_tokens=2)
            assert refused.value.status_code == 507
            message = refused.value.body["message"]
            assert "gemma3-270m" in message and "memory budget of 300.0 MiB" in message, message
            status = health(served)
            assert status["loaded"] == [MODEL] and 0 < status["memory_in_use"] <= status["memory_budget"]
            assert client.chat.completions.create(model=MODEL, messages=ask, max_tokens=2).choices
