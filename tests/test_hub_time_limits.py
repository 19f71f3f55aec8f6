"""A Hub that accepts the connection and never answers: `pull` and `search` end with one line.

huggingface-hub 2.x's client has no time limit, and it passes `timeout=None` on most calls:
against such a server (a stalled proxy, a captive portal) both commands waited forever.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx2
import pytest
from huggingface_hub import constants

from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.hub import http_client


@pytest.fixture
def silent_hub(monkeypatch) -> Iterator[str]:
    """A server on 127.0.0.1 that accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(http_client, "READ_TIMEOUT_S", 1.0)
    yield endpoint
    stop.set()
    thread.join(5)
    for connection in accepted:
        connection.close()
    server.close()


def test_listing_a_repo_on_a_silent_hub_ends_in_one_line(silent_hub):
    from llamadesk.app.hub.repo import list_repo

    started = time.monotonic()
    with pytest.raises(LlamadeskError, match="did not answer in time") as error:
        list_repo("someone/some-model")
    assert time.monotonic() - started < 30 and "\n" not in str(error.value)


def test_a_request_without_a_limit_gets_ours_and_one_with_a_limit_keeps_it():
    client = http_client._client_with_time_limits()
    hook = client.event_hooks["request"][0]
    unlimited = client.build_request("GET", "http://127.0.0.1:9/", timeout=None)
    hook(unlimited)
    assert unlimited.extensions["timeout"]["read"] == http_client.READ_TIMEOUT_S
    limited = client.build_request("GET", "http://127.0.0.1:9/", timeout=httpx2.Timeout(3.0))
    hook(limited)
    assert limited.extensions["timeout"]["read"] == 3.0
    client.close()
