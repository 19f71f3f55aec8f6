"""POST /v1/translations: llamadesk's own endpoint over `llamadesk.app.translate`, as the CLI translates.

    {"text": "Where is the station?", "target": "fr", "source": "en", "model": "gemma3-270m",
     "mode": "document" | "lines", "glossary": {"station": "gare"}, "keep_quotes": false}
    -> {"model", "source", "target", "text", "segments": [{"source", "translation", ...}], "seconds"}

The same job as `llamadesk translate`: Markdown structure kept, placeholders, URLs, code and tags
hidden from the model and checked afterwards (a segment that loses one is retried, then translated
around its spans). Whole replies only: a translation is checked segment by segment before it is final.
A typeset source (“…”, ’) gets the target language's quotes and apostrophes unless "keep_quotes"
is true (app/translate/typography.py).

With `serve --parallel N` its segments are decoded beside the other clients' replies (up to N/2 at
once, in the model's batched decoder) rather than with the model to themselves, so a long document
does not hold everyone else up; one reply at a time, it waits its turn like a reply.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.server.api_errors import ApiError
from llamadesk.app.server.client_reply import ClientReply
from llamadesk.app.server.model_pool import (
    GenerationRequest,
    Job,
    ReplyDone,
    ReplyEvent,
    ReplyFailed,
    shutdown_error,
)
from llamadesk.app.server.request_fields import Fields, read_json_object
from llamadesk.app.server.sampling_fields import MAX_MODEL_NAME

DEFAULT_MODEL = "gemma3-270m"  # the translation starter, as for the CLI
MAX_GLOSSARY_TERMS = 500


def _language(fields: Fields, name: str, required: bool):
    from llamadesk.app.translate import resolve_language

    spec = fields.string(name, required=required, max_length=64)
    if spec is None:
        return None
    try:
        return resolve_language(spec, name)
    except BadInputError as err:
        raise ApiError(400, str(err), param=name) from None


def _glossary(fields: Fields) -> dict[str, str] | None:
    value = fields.raw("glossary")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(
            400, '\'glossary\' must be an object mapping terms to their translations, like {"station": "gare"}'
        )
    if len(value) > MAX_GLOSSARY_TERMS:
        raise ApiError(400, f"'glossary' has {len(value)} terms; it may map at most {MAX_GLOSSARY_TERMS}")
    for term, translation in value.items():
        if not isinstance(translation, str):
            kind = type(translation).__name__
            raise ApiError(400, f"'glossary' term {term[:80]!r} must map to text, not {kind}")
        if not (term.strip() and translation.strip()):
            raise ApiError(400, f"'glossary' term {term[:80]!r} and its translation must not be empty")
    return dict(value)


async def translations(request: Request) -> Response:
    from llamadesk.app.translate import JobSettings

    fields = Fields(await read_json_object(request, request.app.state.config.max_body_bytes))
    text = fields.string("text", required=True)
    if not text or not text.strip():
        raise ApiError(400, "'text' must not be empty", param="text")
    mode = fields.string("mode") or "document"
    if mode not in ("document", "lines"):
        raise ApiError(400, "'mode' must be document or lines", param="mode")
    settings = JobSettings(
        target=_language(fields, "target", required=True),
        source=_language(fields, "source", required=False),
        mode=mode,
        glossary=_glossary(fields),
        typography=not fields.boolean("keep_quotes", False),
    )
    model = fields.string("model", max_length=MAX_MODEL_NAME) or DEFAULT_MODEL

    def work(engine, job: Job, decoder) -> ReplyEvent:
        return _translate(engine, job, text, settings, decoder)

    reply = await ClientReply.start(request, request.app.state.pool, GenerationRequest(model=model, work=work))
    _, done = await reply.collect()
    return JSONResponse({"model": model, **(done.result or {})})


def _translate(engine, job: Job, text: str, settings, decoder) -> ReplyEvent:
    """The translation job, cancelled with the HTTP job; its result as the job's last event.

    With `decoder` (serve --parallel), its segments go to the model's batched decoder, several at
    once, beside other clients' replies: half the decoder's sequences, so that replies still find
    room. Its translators stop only their own sequences when the job is cancelled.
    """
    from llamadesk.app.translate import JobCancelled, JobFinished, JobStarted, TranslationJob, translator_for
    from llamadesk.app.translate.detection import SourceLanguageUnknown
    from llamadesk.app.translate.parallel import ParallelTranslators

    translator = translator_for(engine)
    parallel = None
    if decoder is not None:
        workers = max(1, decoder.n_sequences // 2)
        parallel = ParallelTranslators(engine, translator.strategy, workers, shared_decoder=decoder)
        # The job's own translator only chunks the text and names the strategy here: one of the
        # shared ones, so that cancelling it never stops the engine under another client's reply.
        translator = parallel.translators[0]
    translation = TranslationJob(translator, text, settings, parallel=parallel)
    job.when_cancelled(translation.cancel)
    source = None
    try:
        for event in translation.run():
            if isinstance(event, JobStarted):
                source = event.source
            elif isinstance(event, JobCancelled):
                if job.shut_down:  # its client is still there: a retry after the restart may succeed
                    return ReplyFailed(shutdown_error("the server shut down before the translation was complete"))
                return ReplyFailed(ApiError(499, "the translation was cancelled"))
            elif isinstance(event, JobFinished):
                return ReplyDone("stop", None, 0.0, event.seconds, result=_result(event, source, settings.target))
    except SourceLanguageUnknown as err:  # its advice names the CLI's flag; the API's field is 'source'
        return ReplyFailed(ApiError(400, f"{err.reason}; give 'source'", param="source"))
    return ReplyFailed(ApiError(500, "the translation ended without a result"))


def _result(event, source, target) -> dict:
    return {
        "source": source.code if source is not None else None,
        "target": target.code,
        "text": event.text,
        "segments": [r.to_json() for r in event.results],
        "seconds": round(event.seconds, 3),
    }
