"""huggingface-hub's HTTP client, with time limits.

huggingface-hub 2.x makes its httpx client with `timeout=None`: a Hub, proxy or captive portal
that accepts the connection and then never answers held `pull` and `search` forever, with
nothing on the screen. The client here is huggingface-hub's own (its request hooks, redirects),
with limits where a call sets none: a connection must open within CONNECT_TIMEOUT_S, and a read
that waits READ_TIMEOUT_S for a single byte fails, which errors.py turns into one line ("did not
answer in time"). Downloads set their own limit (HF_HUB_DOWNLOAD_TIMEOUT) and resume on the next
pull.
"""

from __future__ import annotations

import threading

import httpx2
from huggingface_hub import set_client_factory
from huggingface_hub.utils._http import default_client_factory  # the 2.x factory whose hooks we keep

CONNECT_TIMEOUT_S = 15.0
READ_TIMEOUT_S = 20.0  # an API answer not begun in 20 s is not coming (downloads set their own limit)

_INSTALLED = threading.Event()


def _limit_time(request: httpx2.Request) -> None:
    """A request that asks for no time limit at all gets ours.

    huggingface-hub passes `timeout=None` explicitly on most calls (model_info, list_models'
    pages), which overrides any client default; a request's timeouts travel in its extensions,
    and a request hook runs before it is sent. A call that chose a limit of its own keeps it.
    """
    timeout = request.extensions.get("timeout") or {}
    if all(value is None for value in timeout.values()):
        request.extensions["timeout"] = httpx2.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S).as_dict()


def _client_with_time_limits() -> httpx2.Client:
    client = default_client_factory()
    client.timeout = httpx2.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    client.event_hooks["request"].insert(0, _limit_time)
    return client


def use_time_limits() -> None:
    """Make huggingface-hub's client (from its next request on) one with time limits; idempotent."""
    if not _INSTALLED.is_set():
        set_client_factory(_client_with_time_limits)
        _INSTALLED.set()
