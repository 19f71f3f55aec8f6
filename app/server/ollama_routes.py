"""The subset of Ollama's API that its clients use: /api/tags, /api/show, /api/ps, /api/chat,
/api/generate, /api/version.

Ollama streams by default, as one JSON object per line (NDJSON), and reports durations in
nanoseconds. Errors are `{"error": "..."}`, which the `ollama` package raises as ResponseError
with the status code.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime, timezone
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.engine.types import ChatMessage, Sampling
from llamadesk.app.server.api_errors import ApiError
from llamadesk.app.server.client_reply import ClientReply, first_event_or_error
from llamadesk.app.server.model_list import ListedModel, listed_models, model_details
from llamadesk.app.server.model_pool import GenerationRequest, ReplyDone, ReplyFailed
from llamadesk.app.server.reply_stream import ndjson_lines, ndjson_response
from llamadesk.app.server.request_fields import Fields, read_json_object
from llamadesk.app.server.sampling_fields import (
    MAX_MODEL_NAME,
    SEED_RANGE,
    any_json_object_grammar,
    chat_messages,
    json_output_grammar,
    llama_seed,
    model_name,
)

# The Ollama release whose API this subset follows; clients compare it to enable features.
OLLAMA_API_VERSION = "0.9.0"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


async def version(request: Request) -> Response:
    return JSONResponse({"version": OLLAMA_API_VERSION})


def _model_entry(m: ListedModel) -> dict[str, Any]:
    """A model as /api/tags and /api/ps list it."""
    # Ollama's digest is its blob's sha256; hashing every GGUF per listing would read gigabytes,
    # so this one identifies the file by name, size and time instead (stable while it is unchanged).
    digest = hashlib.sha256(f"{m.name}\0{m.size}\0{m.modified}".encode()).hexdigest()
    return {
        "name": m.name,
        "model": m.name,
        "modified_at": _time(m.modified),
        "size": m.size,
        "digest": digest,
        "details": _details_of(m),
    }


def _details_of(m: ListedModel) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": m.family,
        "families": [m.family],
        "parameter_size": m.parameter_size,
        "quantization_level": m.quantization,
    }


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


async def tags(request: Request) -> Response:
    return JSONResponse({"models": [_model_entry(m) for m in await listed_models(request.app.state.pool)]})


async def running(request: Request) -> Response:
    """GET /api/ps: the models in memory now (`ollama ps`). They stay until another needs the room,
    so each is said to expire a day from now."""
    pool = request.app.state.pool
    expires = _time(datetime.now(timezone.utc).timestamp() + 24 * 3600)
    models = []
    for name in pool.status()["loaded"]:  # their headers alone, not the whole library's
        try:
            found = await model_details(pool, name)
        except (LlamadeskError, OSError):  # its file went away since it was loaded: left out, as /api/tags does
            continue
        models.append({**_model_entry(found.listed), "expires_at": expires, "size_vram": 0})
    return JSONResponse({"models": models})


async def show(request: Request) -> Response:
    """POST /api/show: a model's details, its chat template and context length (`ollama show`;
    chat clients ask it before the first message)."""
    fields = Fields(await read_json_object(request, request.app.state.config.max_body_bytes))
    name = fields.string("model", max_length=MAX_MODEL_NAME) or fields.string("name", max_length=MAX_MODEL_NAME)
    if not name:
        raise ApiError(400, "'model' must name a model; GET /api/tags lists them", param="model")
    found = await model_details(request.app.state.pool, name.removesuffix(":latest"))
    family = found.listed.family
    return JSONResponse(
        {
            "modelfile": "",
            "parameters": "",
            "template": found.chat_template,
            "details": _details_of(found.listed),
            "model_info": {
                "general.architecture": family,
                "general.parameter_count": found.parameters,
                f"{family}.context_length": found.context_length,
            },
            "capabilities": ["completion"],
            "modified_at": _time(found.listed.modified),
        }
    )


def _ollama_model(fields: Fields) -> str:
    name = model_name(fields)
    # Ollama's clients and users write NAME:latest for a model without a tag.
    return name.removesuffix(":latest") if name.endswith(":latest") else name


_ZERO_DURATION = re.compile(r"0+(\.0*)?(ns|us|µs|ms|s|m|h)?")


def _unloads(fields: Fields) -> bool:
    """Whether `keep_alive` asks to free the model now (0, "0", "0s", "0m"...): what `ollama stop`
    sends. Any other value is accepted and has no effect: models stay loaded until another needs
    the room (--max-models, --memory-budget)."""
    value = fields.raw("keep_alive")
    if value is None:
        return False
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | str)
        or (isinstance(value, str) and len(value) > 32)
    ):
        raise ApiError(400, "'keep_alive' must be a duration such as \"5m\" or a number of seconds", param="keep_alive")
    if isinstance(value, str):
        return _ZERO_DURATION.fullmatch(value.strip()) is not None
    return value == 0


def _sampling(fields: Fields, max_tokens_limit: int) -> tuple[Sampling, tuple[str, ...]]:
    options = fields.object("options") or Fields({}, "options.")
    num_predict = options.integer("num_predict", -2, max_tokens_limit)
    temperature = options.number("temperature", 0, 5)
    top_p = options.number("top_p", 0, 1)
    top_k = options.integer("top_k", 0, 100_000)
    min_p = options.number("min_p", 0, 1)
    repeat_penalty = options.number("repeat_penalty", 0, 5)
    grammar = _format_grammar(fields.raw("format"))
    sampling = Sampling(  # Ollama's defaults where the request leaves a field out
        temperature=0.8 if temperature is None else temperature,
        top_p=0.9 if top_p is None else top_p,
        top_k=40 if top_k is None else top_k,
        min_p=0.0 if min_p is None else min_p,
        repeat_penalty=1.1 if repeat_penalty is None else repeat_penalty,
        seed=llama_seed(options.integer("seed", *SEED_RANGE)),
        # -1 (until done) and -2 (fill the context) both end at the server's limit here.
        max_tokens=num_predict if num_predict is not None and num_predict > 0 else max_tokens_limit,
        grammar=grammar,
    )
    return sampling, options.stop_list("stop")


def _format_grammar(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if value == "json":
        return any_json_object_grammar()
    if isinstance(value, dict):
        return json_output_grammar(value, "format")
    raise ApiError(400, "'format' must be \"json\" or a JSON schema object", param="format")


def _durations(done: ReplyDone) -> dict[str, Any]:
    ns = 1_000_000_000
    stats = done.stats
    prompt_seconds = stats.time_to_first_token if stats else 0.0
    return {
        "done_reason": done.finish_reason,
        "total_duration": int(done.total_seconds * ns),
        "load_duration": int(done.load_seconds * ns),
        "prompt_eval_count": done.prompt_tokens,
        "prompt_eval_duration": int(prompt_seconds * ns),
        "eval_count": done.completion_tokens,
        "eval_duration": int(max(done.total_seconds - done.load_seconds - prompt_seconds, 0) * ns),
    }


async def chat(request: Request) -> Response:
    state = request.app.state
    fields = Fields(await read_json_object(request, state.config.max_body_bytes))
    if fields.raw("tools"):  # the ollama package always sends "tools": []
        raise ApiError(400, "'tools': tool calls are not served by llamadesk", param="tools")
    model = _ollama_model(fields)
    unload = _unloads(fields)  # checked whatever the request asks (a bad value with messages passed)
    messages = chat_messages(fields.raw("messages")) if fields.raw("messages") != [] else []
    if not messages:  # Ollama's "load the model" request (or, with keep_alive 0, "unload it"): an empty conversation
        return await _respond(request, fields, GenerationRequest(model=model, unload=unload), _chat_line)
    sampling, stop = _sampling(fields, state.config.max_tokens)
    generation = GenerationRequest(model=model, messages=messages, sampling=sampling, stop=stop)
    return await _respond(request, fields, generation, _chat_line)


async def generate(request: Request) -> Response:
    state = request.app.state
    fields = Fields(await read_json_object(request, state.config.max_body_bytes))
    if fields.raw("template") or fields.raw("suffix") or fields.raw("images"):
        raise ApiError(400, "'template', 'suffix' and 'images' are not served by llamadesk")
    model = _ollama_model(fields)
    prompt = fields.string("prompt") or ""
    system = fields.string("system")
    unload = _unloads(fields)
    if not prompt:  # Ollama's "load the model" request (or, with keep_alive 0, "unload it")
        return await _respond(request, fields, GenerationRequest(model=model, unload=unload), _generate_line)
    sampling, stop = _sampling(fields, state.config.max_tokens)
    if fields.boolean("raw", False):
        generation = GenerationRequest(model=model, prompt=prompt, sampling=sampling, stop=stop)
    else:
        # Through the model's chat template, as Ollama does; a base model without one gets the plain prompt.
        messages: list[ChatMessage] = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        generation = GenerationRequest(model=model, messages=messages, prompt=prompt, sampling=sampling, stop=stop)
    return await _respond(request, fields, generation, _generate_line)


# -- one reply, whole or streamed ---------------------------------------------------------------


def _chat_line(model: str, text: str, done: ReplyDone | None) -> dict[str, Any]:
    line: dict[str, Any] = {
        "model": model,
        "created_at": _now(),
        "message": {"role": "assistant", "content": text},
        "done": done is not None,
    }
    return {**line, **_durations(done)} if done is not None else line


def _generate_line(model: str, text: str, done: ReplyDone | None) -> dict[str, Any]:
    line: dict[str, Any] = {"model": model, "created_at": _now(), "response": text, "done": done is not None}
    return {**line, **_durations(done)} if done is not None else line


async def _respond(
    request: Request,
    fields: Fields,
    generation: GenerationRequest,
    line: Callable[[str, str, ReplyDone | None], dict[str, Any]],
) -> Response:
    stream = fields.boolean("stream", True)
    reply = await ClientReply.start(request, request.app.state.pool, generation)
    if not stream:
        text, done = await reply.collect()
        return JSONResponse(line(generation.model, text, done))
    first = await first_event_or_error(reply)

    def failure(failed: ReplyFailed) -> dict[str, Any]:
        return failed.error.ollama_body()

    return ndjson_response(ndjson_lines(reply, first, partial(line, generation.model), failure))
