"""huggingface-hub's HTTP client, with time limits.

huggingface-hub 2.x makes its httpx client with `timeout=None`: a Hub, proxy or captive portal
that accepts the connection and then never answers held `pull` and `search` forever, with
nothing on the screen. The client here is huggingface-hub's own (its request hooks, redirects),
with limits where a call sets none: a connection must open within CONNECT_TIMEOUT_S, and a read
that waits READ_TIMEOUT_S for a single byte fails, which errors.py turns into one line ("did not
answer in time"). Downloads set their own limit (HF_HUB_DOWNLOAD_TIMEOUT) and resume on the next
pull.

A machine with no network at all is told so at once: huggingface-hub retries a connection that
fails five times with growing waits (23 s in all), but a Hub whose name does not resolve will not
resolve a few seconds later either, so the first request to a host checks that its name resolves
and ends with one line if it does not.
"""

from __future__ import annotations

import socket
import threading
import urllib.request

import httpx2
from huggingface_hub import set_client_factory
from huggingface_hub.utils._http import default_client_factory  # the 2.x factory whose hooks we keep

from llamadesk.app.core.errors import LlamadeskError

CONNECT_TIMEOUT_S = 15.0
READ_TIMEOUT_S = 20.0  # an API answer not begun in 20 s is not coming (downloads set their own limit)

_INSTALLED = threading.Event()
_RESOLVED_HOSTS: set[str] = set()  # hosts already found in this process: one lookup each


class HostNotFound(LlamadeskError):
    """The Hub's host name does not resolve (no network, or a wrong HF_ENDPOINT)."""


def _limit_time(request: httpx2.Request) -> None:
    """A request that asks for no time limit at all gets ours.

    huggingface-hub passes `timeout=None` explicitly on most calls (model_info, list_models'
    pages), which overrides any client default; a request's timeouts travel in its extensions,
    and a request hook runs before it is sent. A call that chose a limit of its own keeps it.
    """
    timeout = request.extensions.get("timeout") or {}
    if all(value is None for value in timeout.values()):
        request.extensions["timeout"] = httpx2.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S).as_dict()


def _require_resolvable_host(request: httpx2.Request) -> None:
    """Fail at once, not after huggingface-hub's retries, when the host's name does not resolve.

    Behind a proxy the proxy resolves names, so nothing is checked there. The error is not one of
    the transport errors huggingface-hub retries on, so it ends the call where it is raised.
    """
    host = request.url.host
    if host in _RESOLVED_HOSTS or urllib.request.getproxies():
        return
    try:
        socket.getaddrinfo(host, request.url.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise HostNotFound(
            f"cannot reach the Hub at {request.url.scheme}://{host}: its name does not resolve "
            f"({err.args[-1] if err.args else type(err).__name__}); check your connection or HF_ENDPOINT, "
            "or set HF_HUB_OFFLINE=1 to use downloaded models"
        ) from err
    _RESOLVED_HOSTS.add(host)


def _client_with_time_limits() -> httpx2.Client:
    client = default_client_factory()
    client.timeout = httpx2.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    client.event_hooks["request"][:0] = [_limit_time, _require_resolvable_host]
    return client


def use_time_limits() -> None:
    """Make huggingface-hub's client (from its next request on) one with time limits; idempotent."""
    if not _INSTALLED.is_set():
        set_client_factory(_client_with_time_limits)
        _INSTALLED.set()
