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


def test_a_hub_whose_name_does_not_resolve_ends_at_once_not_after_retries(monkeypatch):
    """No network: huggingface-hub's retries took 23 s to say so; the name lookup says it at once.

    `.invalid` never resolves (RFC 2606), with or without a network.
    """
    from llamadesk.app.hub.repo import search_gguf_models

    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://hub.llamadesk.invalid")
    started = time.monotonic()
    with pytest.raises(http_client.HostNotFound, match="hub.llamadesk.invalid: its name does not resolve") as error:
        search_gguf_models("smollm2")
    assert time.monotonic() - started < 10 and "\n" not in str(error.value)
    assert "hub.llamadesk.invalid" not in http_client._RESOLVED_HOSTS


def test_behind_a_proxy_the_name_is_left_to_the_proxy(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    request = httpx2.Request("GET", "https://hub.llamadesk.invalid/api/models")
    http_client._require_resolvable_host(request)  # no lookup, no error: the proxy resolves names
    monkeypatch.delenv("HTTPS_PROXY")
    for proxy in ("https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    with pytest.raises(http_client.HostNotFound):
        http_client._require_resolvable_host(request)
