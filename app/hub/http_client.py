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

The Hub's API answers (listings, searches: JSON under /api/, not file downloads) are read here,
before huggingface-hub parses them, with a size cap and an overall deadline: a server that sends
a gigabyte of JSON (memory grows several times that when parsed) or trickles a byte every few
seconds (no single read waits long enough to time out) ends in one line. A 429 that asks for a
long wait ends in one line too: huggingface-hub would sleep for whatever the server says, without
a word (its warning is hidden), and retry five times.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.request

import httpx2
from huggingface_hub import get_token, set_client_factory
from huggingface_hub.utils._http import (  # the 2.x factory whose hooks we keep, and its 429 reading
    _parse_retry_after,
    default_client_factory,
    parse_ratelimit_headers,
)

from llamadesk.app.core.errors import BadInputError, LlamadeskError

CONNECT_TIMEOUT_S = 15.0
READ_TIMEOUT_S = 20.0  # an API answer not begun in 20 s is not coming (downloads set their own limit)
API_DEADLINE_S = 120.0  # a whole API answer: a repo listing is a few hundred KB, even on a slow link
API_MAX_BYTES = 64 * 1024**2  # model_info of a repo with thousands of files is a few MB
MAX_RATE_LIMIT_WAIT_S = 10  # longer waits asked by a 429 end the command instead

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


def _is_api_answer(response: httpx2.Response) -> bool:
    path = response.request.url.path
    return response.request.method != "HEAD" and "/api/" in path and "/resolve/" not in path


def _refuse_long_rate_limit(response: httpx2.Response) -> None:
    """A 429 asking to wait longer than MAX_RATE_LIMIT_WAIT_S ends the call with one line."""
    if response.status_code != 429:
        return
    limit = parse_ratelimit_headers(response.headers)
    wait = limit.reset_in_seconds if limit is not None and limit.remaining == 0 else None
    if wait is None:
        wait = _parse_retry_after(response.headers)
    if wait is not None and wait > MAX_RATE_LIMIT_WAIT_S:
        response.close()
        raise LlamadeskError(
            f"the Hub at {response.request.url.scheme}://{response.request.url.host} is limiting requests (429) "
            f"and asks to wait {_duration(wait)}; try again then"
        )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} hours"


def _read_api_answer(response: httpx2.Response) -> None:
    """Read an API answer now, within API_MAX_BYTES and API_DEADLINE_S (see the module docstring)."""
    if not _is_api_answer(response):
        return
    where = f"{response.request.url.scheme}://{response.request.url.host}"
    too_big = LlamadeskError(
        f"the answer of the Hub at {where} is over {API_MAX_BYTES // 1024**2} MB, which no Hub sends; check HF_ENDPOINT"
    )
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > API_MAX_BYTES:
        response.close()
        raise too_big
    deadline = time.monotonic() + API_DEADLINE_S
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > API_MAX_BYTES:
            response.close()
            raise too_big
        if time.monotonic() > deadline:
            response.close()
            raise LlamadeskError(
                f"the Hub at {where} did not send its whole answer in {API_DEADLINE_S:.0f} s; "
                "check your connection (or HF_ENDPOINT) and try again"
            )
        chunks.append(chunk)
    # What huggingface-hub's .json() then reads: the body, already decoded, held once.
    response._content = b"".join(chunks)


def _client_with_time_limits() -> httpx2.Client:
    client = default_client_factory()
    client.timeout = httpx2.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    client.event_hooks["request"][:0] = [_limit_time, _require_resolvable_host]
    client.event_hooks["response"][:0] = [_refuse_long_rate_limit, _read_api_answer]
    return client


def check_token() -> None:
    """A token (HF_TOKEN, or the one `hf auth login` saved) must be printable ASCII: httpx refuses
    anything else in a header before a request is sent, which read as a Hub sending nonsense."""
    token = get_token()
    if token is None:
        return
    odd = [c for c in token if not ("!" <= c <= "~")]
    if odd:
        raise BadInputError(
            f"HF_TOKEN (or the token saved by `hf auth login`) holds a character a token cannot have "
            f"(U+{ord(odd[0]):04X}); copy it again from https://huggingface.co/settings/tokens"
        )


def use_time_limits() -> None:
    """Make huggingface-hub's client (from its next request on) one with time limits; idempotent.
    Called before every call to the Hub, so the token is checked here too."""
    check_token()
    if not _INSTALLED.is_set():
        set_client_factory(_client_with_time_limits)
        _INSTALLED.set()
