"""OpenAI's API: GET /v1/models and /v1/models/{id}, POST /v1/chat/completions and /v1/completions,
streamed as SSE or not.

Replies follow OpenAI's objects field for field (`chat.completion`, `chat.completion.chunk`,
`text_completion`, `usage`), which is what the `openai` package and the tools built on it parse.
Fields that change what a reply means but are not served here (tools, n > 1, logprobs, images)
are refused with a 400 naming them, rather than silently ignored.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llamadesk.app.engine.types import Sampling
from llamadesk.app.server.api_errors import ApiError
from llamadesk.app.server.client_reply import ClientReply, first_event_or_error
from llamadesk.app.server.model_list import ListedModel, listed_models, model_details
from llamadesk.app.server.model_pool import GenerationRequest, ReplyDone, ReplyFailed
from llamadesk.app.server.reply_stream import TextEvents, event_stream_response, openai_events
from llamadesk.app.server.request_fields import Fields, read_json_object
from llamadesk.app.server.sampling_fields import (
    SEED_RANGE,
    any_json_object_grammar,
    chat_messages,
    json_output_grammar,
    llama_seed,
    model_name,
)

UNSERVED_FIELDS = {
    "tools": "tool calls",
    "functions": "function calls",
    "audio": "audio output",
    "prediction": "predicted outputs",
    "logit_bias": "logit biases",
}


def _model_object(m: ListedModel) -> dict[str, Any]:
    return {"id": m.name, "object": "model", "created": m.modified, "owned_by": "llamadesk"}


async def list_models(request: Request) -> Response:
    models = await listed_models(request.app.state.pool)
    return JSONResponse({"object": "list", "data": [_model_object(m) for m in models]})


async def retrieve_model(request: Request) -> Response:
    """GET /v1/models/{id}: what `client.models.retrieve(id)` reads."""
    found = await model_details(request.app.state.pool, request.path_params["model"])
    return JSONResponse(_model_object(found.listed))


def _refuse_unserved(fields: Fields) -> None:
    for name, what in UNSERVED_FIELDS.items():
        if fields.present(name):
            raise ApiError(400, f"'{name}': {what} are not served by llamadesk", param=name)
    # Without tools, "none" and "auto" ask for a plain reply, which is what comes; anything else
    # ("required", a named function) asks for a call that would not come.
    for name in ("tool_choice", "function_call"):
        if fields.present(name) and fields.raw(name) not in ("none", "auto"):
            raise ApiError(400, f"'{name}': tool and function calls are not served by llamadesk", param=name)
    if fields.boolean("logprobs", False) or fields.present("top_logprobs"):
        raise ApiError(400, "'logprobs' are not served by llamadesk", param="logprobs")
    fields.integer("n", 1, 1)  # only one choice: the message says which values are allowed


def _sampling(fields: Fields, max_tokens_limit: int, grammar: str | None) -> Sampling:
    max_tokens = fields.integer("max_completion_tokens", 1, max_tokens_limit)
    if max_tokens is None:
        max_tokens = fields.integer("max_tokens", 1, max_tokens_limit)
    # Accepted for compatibility, checked for range; llama.cpp's repeat penalty is a different knob.
    fields.number("frequency_penalty", -2, 2)
    fields.number("presence_penalty", -2, 2)
    temperature = fields.number("temperature", 0, 2)
    top_p = fields.number("top_p", 0, 1)
    return Sampling(
        temperature=1.0 if temperature is None else temperature,  # OpenAI's defaults
        top_p=1.0 if top_p is None else top_p,
        seed=llama_seed(fields.integer("seed", *SEED_RANGE)),
        max_tokens=max_tokens if max_tokens is not None else max_tokens_limit,
        grammar=grammar,
    )


def _response_format_grammar(fields: Fields) -> str | None:
    response_format = fields.object("response_format")
    if response_format is None:
        return None
    kind = response_format.string("type", required=True)
    if kind == "text":
        return None
    if kind == "json_object":
        return any_json_object_grammar()
    if kind == "json_schema":
        spec = response_format.object("json_schema")
        if spec is None or not isinstance(spec.raw("schema"), dict):
            raise ApiError(400, "'response_format.json_schema.schema' must be a JSON schema object")
        return json_output_grammar(spec.raw("schema"), "response_format.json_schema.schema")
    raise ApiError(400, "'response_format.type' must be text, json_object or json_schema", param="response_format")


def _usage(done: ReplyDone) -> dict[str, int]:
    return {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": done.prompt_tokens + done.completion_tokens,
    }


async def chat_completions(request: Request) -> Response:
    state = request.app.state
    fields = Fields(await read_json_object(request, state.config.max_body_bytes))
    _refuse_unserved(fields)
    generation = GenerationRequest(
        model=model_name(fields),
        messages=chat_messages(fields.raw("messages")),
        sampling=_sampling(fields, state.config.max_tokens, _response_format_grammar(fields)),
        stop=fields.stop_list("stop"),
    )
    return await _respond(request, fields, generation, "chatcmpl", _chat_object, _chat_chunk)


async def completions(request: Request) -> Response:
    state = request.app.state
    fields = Fields(await read_json_object(request, state.config.max_body_bytes))
    _refuse_unserved(fields)
    if fields.boolean("echo", False) or fields.present("suffix") or fields.integer("best_of", 1, 1) not in (None, 1):
        raise ApiError(400, "'echo' and 'suffix' are not served by llamadesk")
    prompt = fields.raw("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ApiError(400, "'prompt' must be a string (one prompt per request)", param="prompt")
    generation = GenerationRequest(
        model=model_name(fields),
        prompt=prompt,
        sampling=_sampling(fields, state.config.max_tokens, _response_format_grammar(fields)),
        stop=fields.stop_list("stop"),
    )
    return await _respond(request, fields, generation, "cmpl", _completion_object, _completion_chunk)


# -- one reply, whole or streamed ---------------------------------------------------------------


async def _respond(
    request: Request,
    fields: Fields,
    generation: GenerationRequest,
    id_prefix: str,
    whole: Callable[..., dict[str, Any]],
    chunk: Callable[..., dict[str, Any]],
) -> Response:
    stream = fields.boolean("stream", False)
    options = fields.object("stream_options")
    include_usage = options.boolean("include_usage", False) if options is not None else False
    meta = {"id": f"{id_prefix}-{uuid.uuid4().hex}", "created": int(time.time()), "model": generation.model}
    reply = await ClientReply.start(request, request.app.state.pool, generation)
    if not stream:
        text, done = await reply.collect()
        return JSONResponse(whole(meta, text, done))
    first = await first_event_or_error(reply)

    def ending(done: ReplyDone) -> list[dict[str, Any]]:
        last = [chunk(meta, finish=done.finish_reason)]
        if include_usage:
            last.append({**chunk(meta), "choices": [], "usage": _usage(done)})
        return last

    def failure(failed: ReplyFailed) -> dict[str, Any]:
        return failed.error.openai_body()

    text_events = TextEvents(lambda text: chunk(meta, text=text))
    return event_stream_response(openai_events(reply, first, chunk(meta, role=True), text_events, ending, failure))


def _chat_object(meta: dict, text: str, done: ReplyDone) -> dict[str, Any]:
    return {
        **meta,
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": done.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": _usage(done),
    }


def _chat_chunk(meta: dict, text: str | None = None, role: bool = False, finish: str | None = None) -> dict[str, Any]:
    delta: dict[str, str] = {}
    if role:
        delta = {"role": "assistant", "content": ""}
    elif text is not None:
        delta = {"content": text}
    return {
        **meta,
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }


def _completion_object(meta: dict, text: str, done: ReplyDone) -> dict[str, Any]:
    return {
        **meta,
        "object": "text_completion",
        "choices": [{"index": 0, "text": text, "finish_reason": done.finish_reason, "logprobs": None}],
        "usage": _usage(done),
    }


def _completion_chunk(
    meta: dict, text: str | None = None, role: bool = False, finish: str | None = None
) -> dict[str, Any]:
    # Completions have no role; the first chunk carries empty text so both APIs share one stream shape.
    return {
        **meta,
        "object": "text_completion",
        "choices": [{"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}],
    }
