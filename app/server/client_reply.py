"""One client's reply on the event loop: submit the job, watch the client, read the events.

The watcher waits on the connection's next ASGI message while the job lives: the server answers
`http.disconnect` the moment the client goes away, so that is noticed even while no bytes are being
sent (waiting in the queue, or a long prompt being read), and its generation is stopped at once.
Waiting, not polling: a poll every 0.1 s would wake the event loop ten times a second for nothing,
and on a small machine every wake-up is taken from the model.
"""

from __future__ import annotations

import asyncio
import contextlib

import anyio
from starlette.requests import Request

from llamadesk.app.engine.types import TextPiece
from llamadesk.app.server.model_pool import GenerationRequest, Job, ModelPool, ReplyDone, ReplyEvent, ReplyFailed


class ClientReply:
    def __init__(self, request: Request, pool: ModelPool, job: Job):
        self._request = request
        self._pool = pool
        self.job = job
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    @classmethod
    async def start(cls, request: Request, pool: ModelPool, generation: GenerationRequest) -> ClientReply:
        """Check the model name (404 now, not after queueing), then queue the job."""
        await anyio.to_thread.run_sync(pool.model_path, generation.model)
        return cls(request, pool, pool.submit(generation, asyncio.get_running_loop()))

    async def _watch(self) -> None:
        # The request's body has been read: the next message can only be the disconnect (uvicorn
        # also answers it once the response is complete, by which time the job is finished).
        while not self.job.finished:
            message = await self._request.receive()
            if message["type"] == "http.disconnect":
                if not self.job.finished:
                    self._pool.cancel(self.job)
                return

    async def next(self) -> TextPiece | ReplyDone:
        """The next piece of text or the end; a failure is raised as its ApiError."""
        event = await self.job.next_event()
        if isinstance(event, ReplyFailed):
            raise event.error
        return event

    async def next_events(self, timeout: float | None = None) -> list[ReplyEvent]:
        """Every event ready now, waiting for at least one ([] after `timeout` seconds); a failure is
        returned in the list, after the text that came before it, for the stream to report in-band."""
        return await self.job.next_events(timeout)

    async def collect(self) -> tuple[str, ReplyDone]:
        """The whole reply (for a request that did not ask to stream)."""
        parts: list[str] = []
        try:
            while True:
                for event in await self.job.next_events():
                    if isinstance(event, ReplyFailed):
                        raise event.error
                    if isinstance(event, ReplyDone):
                        return "".join(parts), event
                    parts.append(event.text)
        finally:
            self.close()

    def close(self) -> None:
        """Synchronous on purpose: it runs in the `finally` of a cancelled stream, where an await would
        raise CancelledError before the engine is told to stop."""
        self._watcher.cancel()
        if not self.job.finished:
            self._pool.cancel(self.job)


async def first_event_or_error(reply: ClientReply) -> TextPiece | ReplyDone:
    """Wait for the reply to start, so that a failure before any text (unknown template, a prompt
    longer than the context) is still a 4xx response rather than an error inside a 200 stream."""
    try:
        return await reply.next()
    except BaseException:
        with contextlib.suppress(Exception):
            reply.close()
        raise
