"""The Starlette app: routes of both APIs, middleware, and errors in each API's shape.

Every error a client can cause becomes a 4xx in the shape its API expects; anything unforeseen
becomes a 500 with one line and no traceback (the traceback stays in the server's log), and the
server keeps serving.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.server import ollama_routes, openai_routes, translation_route
from llamadesk.app.server.api_errors import ApiError, is_ollama_path
from llamadesk.app.server.auth import ApiKeyMiddleware
from llamadesk.app.server.model_pool import ModelPool
from llamadesk.app.server.request_log import RequestLogMiddleware
from llamadesk.app.server.server_config import ServerConfig


def error_response(request: Request, error: ApiError) -> Response:
    body = error.ollama_body() if is_ollama_path(request.url.path) else error.openai_body()
    # ASCII-escaped: a message may quote the request (a model name), and a lone surrogate from
    # its JSON ("\\ud800") cannot be encoded as UTF-8, which made the error itself a 500.
    content = json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return Response(content, status_code=error.status, headers=error.headers, media_type="application/json")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # unknown path (404), wrong method (405)
    return error_response(request, ApiError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}"))


async def _llamadesk_error(request: Request, exc: Exception) -> Response:
    # A library call in a route said the input cannot be used: the client's error, not the server's.
    status = 400 if isinstance(exc, BadInputError) else 422
    return error_response(request, ApiError(status, str(exc)))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    return error_response(request, ApiError(500, f"internal error ({type(exc).__name__}); see the server's log"))


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", **request.app.state.pool.status()})


def build_app(config: ServerConfig, pool: ModelPool) -> Starlette:
    """The app over `pool` (a model to preload is loaded by the pool before the server starts)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool.start()
        try:
            yield
        finally:
            pool.close()

    middleware = [Middleware(RequestLogMiddleware)]
    if config.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST"],
                # Any header: the openai JS SDK sends x-stainless-*, ollama-js User-Agent, and a
                # preflight refusing one blocks the page. Safe, as the key is a header, not a cookie.
                allow_headers=["*"],
            )
        )
    if config.api_key is not None:
        middleware.append(Middleware(ApiKeyMiddleware, api_key=config.api_key))
    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", openai_routes.list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", openai_routes.retrieve_model, methods=["GET"]),
        Route("/v1/chat/completions", openai_routes.chat_completions, methods=["POST"]),
        Route("/v1/completions", openai_routes.completions, methods=["POST"]),
        Route("/v1/translations", translation_route.translations, methods=["POST"]),
        Route("/api/version", ollama_routes.version, methods=["GET"]),
        Route("/api/tags", ollama_routes.tags, methods=["GET"]),
        Route("/api/show", ollama_routes.show, methods=["POST"]),
        Route("/api/ps", ollama_routes.running, methods=["GET"]),
        Route("/api/chat", ollama_routes.chat, methods=["POST"]),
        Route("/api/generate", ollama_routes.generate, methods=["POST"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            LlamadeskError: _llamadesk_error,
            Exception: _unexpected_error,
        },
    )
    app.state.config = config
    app.state.pool = pool
    return app
