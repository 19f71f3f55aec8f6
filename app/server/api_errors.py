"""Errors a client gets back: a status, a message written for them, and the body each API expects.

OpenAI clients read `{"error": {"message", "type", "param", "code"}}` (the `openai` package turns
the status into AuthenticationError, BadRequestError, ...); Ollama clients read `{"error": "..."}`.
"""

from __future__ import annotations

from typing import Any

# OpenAI's error types per status, as its API returns them.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "server_error",
}


class ApiError(Exception):
    """A request the server answers with `status` and `message` instead of a reply."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    def openai_body(self) -> dict[str, Any]:
        kind = _OPENAI_TYPES.get(self.status, "invalid_request_error" if self.status < 500 else "server_error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}

    def ollama_body(self) -> dict[str, Any]:
        return {"error": self.message}


def is_ollama_path(path: str) -> bool:
    """Ollama's API lives under /api/; everything else answers in OpenAI's shape."""
    return path.startswith("/api/")
