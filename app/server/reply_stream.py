"""Streamed replies as bytes: OpenAI's server-sent events and Ollama's NDJSON lines.

A reply streams one token every few tens of milliseconds, and on a small machine the event loop
shares its cores with the model: every microsecond spent per token here is taken from generation.
So each write carries every event that is ready (one `send` and one system call for all the tokens
that came while the loop was busy, each still its own event), and a token's event is a fixed
prefix, the JSON-encoded text and a fixed suffix, computed once per stream, byte for byte what
json.dumps of the whole chunk would give.

A stream that has nothing to send for PING_SECONDS sends an SSE comment (OpenAI) so that proxies
and clients with read timeouts keep the connection; Ollama's clients expect only JSON lines, and
get none (as from Ollama).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse

from llamadesk.app.engine.types import TextPiece
from llamadesk.app.server.client_reply import ClientReply
from llamadesk.app.server.model_pool import ReplyDone, ReplyEvent, ReplyFailed

PING_SECONDS = 15.0
SSE_END = b"\r\n\r\n"  # an event ends with a blank line (CRLF, as sse-starlette wrote it)
SSE_PING = b": ping" + SSE_END
SSE_DONE = b"data: [DONE]" + SSE_END
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}  # no proxy buffering either
NDJSON = "application/x-ndjson"

_MARK = "\x00llamadesk-text\x00"  # stands for the text while a chunk's template is made; never in a reply's fields


def sse_event(value: dict[str, Any] | str) -> bytes:
    """One server-sent event whose data is `value` as JSON (or a string as it is)."""
    data = value if isinstance(value, str) else json.dumps(value)
    return b"data: " + data.encode() + SSE_END


class TextEvents:
    """The SSE events of one stream's text chunks: `chunk(text=...)` with only the text changing."""

    def __init__(self, chunk: Callable[[str], dict[str, Any]]):
        template = json.dumps(chunk(_MARK))
        before, mark, after = template.partition(json.dumps(_MARK))
        if not mark:
            raise ValueError("the chunk does not carry its text")
        self._before = b"data: " + before.encode()
        self._after = after.encode() + SSE_END

    def __call__(self, text: str) -> bytes:
        # json.dumps escapes every non-ASCII character (ensure_ascii), as it does inside the whole chunk.
        return self._before + json.dumps(text).encode() + self._after


async def openai_events(
    reply: ClientReply,
    first: ReplyEvent,
    opening: dict[str, Any],
    text_events: TextEvents,
    ending: Callable[[ReplyDone], list[dict[str, Any]]],
    failure: Callable[[ReplyFailed], dict[str, Any]],
) -> AsyncIterator[bytes]:
    """`opening`, then a chunk per piece of text, then `ending`'s chunks and [DONE]; a failure after
    the stream began is sent in-band (its status line is long gone) and ends the stream."""
    try:
        out = [sse_event(opening)]
        events = [first]
        while True:
            for event in events:
                if isinstance(event, TextPiece):
                    out.append(text_events(event.text))
                elif isinstance(event, ReplyFailed):
                    out.append(sse_event(failure(event)))
                    yield b"".join(out)
                    return
                else:
                    out.extend(sse_event(chunk) for chunk in ending(event))
                    out.append(SSE_DONE)
                    yield b"".join(out)
                    return
            yield b"".join(out) if out else SSE_PING
            out = []
            events = await reply.next_events(PING_SECONDS)
    finally:
        reply.close()


async def ndjson_lines(
    reply: ClientReply,
    first: ReplyEvent,
    line: Callable[[str, ReplyDone | None], dict[str, Any]],
    failure: Callable[[ReplyFailed], dict[str, Any]],
) -> AsyncIterator[bytes]:
    """A JSON line per piece of text, then the last line with the reply's counts; a failure after the
    stream began is a line `{"error": ...}`, as Ollama sends it."""
    try:
        events = [first]
        while True:
            out = []
            for event in events:
                if isinstance(event, TextPiece):
                    out.append(json.dumps(line(event.text, None)))
                else:
                    out.append(json.dumps(failure(event) if isinstance(event, ReplyFailed) else line("", event)))
                    yield ("\n".join(out) + "\n").encode()
                    return
            yield ("\n".join(out) + "\n").encode()
            events = await reply.next_events()
    finally:
        reply.close()


def event_stream_response(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)


def ndjson_response(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(body, media_type=NDJSON)
