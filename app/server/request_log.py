"""One line per request on stdout when its response ends: journald and `docker logs` friendly.

Logged at the end, not the start, so a stream's line carries its real duration and status.
Bodies and the Authorization header are never logged.
"""

from __future__ import annotations

import sys
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _loggable(path: str) -> str:
    """The path as one line of text: the decoded path of `/x%0A10.0.0.9 POST ...` holds a newline
    that would forge a second log line (and comes before any API key is checked)."""
    return path if path.isprintable() else ascii(path)[1:-1]


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            client = scope.get("client") or ("-", 0)
            elapsed_ms = (time.perf_counter() - started) * 1000
            line = f"{client[0]} {scope['method']} {_loggable(scope['path'])} {status or '-'} {elapsed_ms:.0f}ms"
            print(line, file=sys.stdout, flush=True)
