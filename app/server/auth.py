"""The API key: every request but GET /health needs `Authorization: Bearer KEY` when a key is set.

The key is compared with hmac.compare_digest, whose time does not depend on where the strings
first differ, so the key cannot be guessed byte by byte from response times. /health stays open
so that service managers and load balancers can check readiness without the key; it tells nothing
but whether the server is up and busy.
"""

from __future__ import annotations

import hmac

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from llamadesk.app.server.api_errors import ApiError, is_ollama_path

OPEN_PATHS = frozenset({"/health"})


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, api_key: str):
        self.app = app
        self._key = api_key.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or scope["method"] == "OPTIONS":
            # OPTIONS: a browser's CORS preflight never carries credentials; it grants nothing.
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        raw = headers.get(b"authorization")
        token = bearer_token(raw.decode("latin-1") if raw is not None else None)
        if token is not None and hmac.compare_digest(token.encode("utf-8"), self._key):
            await self.app(scope, receive, send)
            return
        error = ApiError(
            401,
            "a valid API key is required: send 'Authorization: Bearer KEY'"
            if token is None
            else "the API key is not valid",
            code="invalid_api_key",
        )
        body = error.ollama_body() if is_ollama_path(scope["path"]) else error.openai_body()
        response = JSONResponse(body, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)
