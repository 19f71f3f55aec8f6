"""The resident model, the one thread that runs it, and the fair, bounded queue in front of it.

llama.cpp contexts are not thread-safe and a small machine has cores for one reply at a time, so
every generation runs on one worker thread, in arrival order (a FIFO queue is fair: no client can
overtake another). The queue is bounded: past `queue_size` waiting requests the server answers 503
with Retry-After at once rather than letting latency grow without limit. One model is resident
by default; a request for another waits its turn, then the worker closes the old model and loads
the new one, so switching never interrupts a reply. `max_models` and a memory budget keep more in
memory (the least recently used is closed first to make room; see memory_plan) on a machine with
room for them.

A job is cancelled when its client goes away: the worker sets the engine's stop flag (read by
llama.cpp between graph nodes), so the model is free again within a token or so. Shutting down
(SIGTERM, Ctrl-C) cancels every job the same way, but its client is still there and must not take
the text that came for a whole reply: a reply cut short by shutdown ends with a 503 (reply_end).

With `parallel` > 1 (`serve --parallel N`), replies are decoded together instead: the worker
prepares each job's prompt and hands it to the model's batched decoder (batched_replies.py), then
takes the next job while up to N replies stream at once. Switching models and other work with the
engine (a translation) still wait for every reply in flight, as a single reply is waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.engine.types import ChatMessage, GenerationDone, GenerationStats, LoadSettings, Sampling, TextPiece
from llamadesk.app.server.api_errors import ApiError
from llamadesk.app.server.job_queue import JobQueue, QueueFull
from llamadesk.app.server.memory_plan import memory_before_load, memory_when_loaded, models_to_close, too_large_message
from llamadesk.app.server.stop_strings import StopScanner

if TYPE_CHECKING:
    from llamadesk.app.server.batched_replies import BatchedReplies

# "load" and "unload": a job that only loaded or closed the model (Ollama's words for them).
FinishReason = Literal["stop", "length", "load", "unload"]
RETRY_AFTER_SECONDS = 2
GONE_BEFORE_ITS_TURN = "the client went away before its turn"
SHUTTING_DOWN = "the server is shutting down"
SHUT_DOWN_MID_REPLY = "the server shut down before the reply was complete"


def shutdown_error(message: str = SHUTTING_DOWN) -> ApiError:
    """503 with Retry-After: the request may succeed against the server once it is back."""
    return ApiError(503, message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


@dataclass(frozen=True)
class GenerationRequest:
    """One reply to generate. With neither messages nor prompt (nor work), the job only loads the model.

    With both messages and prompt, the messages go through the model's chat template, or the prompt
    is continued as plain text when the model has none (a base model; Ollama's /api/generate).
    """

    model: str
    messages: list[ChatMessage] | None = None
    prompt: str | None = None  # plain completion, no chat template
    sampling: Sampling = field(default_factory=Sampling)
    stop: tuple[str, ...] = ()
    # Other work with the loaded engine (a translation): work(engine, job, decoder) may post
    # progress and returns the job's last event (ReplyDone or ReplyFailed), which the pool posts.
    # One reply at a time, it runs on the worker thread with the engine to itself and decoder None;
    # with --parallel it gets the model's batched decoder and runs on its own thread, its model
    # calls decoded beside the replies in flight. Cancelling the job stops the engine as for a
    # reply, and calls what the work registered with Job.when_cancelled.
    work: Callable[[Any, Job, Any], ReplyEvent] | None = None
    # With neither messages nor prompt: close the model instead of loading it (Ollama's keep_alive 0).
    unload: bool = False


@dataclass(frozen=True)
class ReplyDone:
    finish_reason: FinishReason
    stats: GenerationStats | None  # None for a job that only loaded or closed the model
    load_seconds: float
    total_seconds: float
    result: dict[str, Any] | None = None  # what other work (a translation) produced, for the response

    @property
    def prompt_tokens(self) -> int:
        return self.stats.prompt_tokens if self.stats else 0

    @property
    def completion_tokens(self) -> int:
        return self.stats.generated_tokens if self.stats else 0


@dataclass(frozen=True)
class ReplyFailed:
    error: ApiError


ReplyEvent = TextPiece | ReplyDone | ReplyFailed


class Job:
    """A request in the queue or on the worker; its events cross from the worker to the event loop.

    One wake-up of the event loop per batch, not per event: the worker appends to a deque and only
    wakes the loop when the request's coroutine is waiting for events, and the coroutine then takes
    everything posted so far in one go. A reply streams a token every few tens of milliseconds; on
    a small machine each wake-up (a write to the loop's self-pipe, a thread switch, the GIL handed
    over and back) is time the model does not run, so a coroutine that is behind catches up with
    one wake-up and one write to its client instead of one per token.
    """

    def __init__(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop):
        self.request = request
        self.cancelled = threading.Event()
        # Set by stop_all before it cancels the job: the client is still there, and a reply cut
        # short must reach it as a failure, not as a whole reply (reply_end). Set before
        # `cancelled`, so whoever sees the cancel sees this too.
        self.shut_down = False
        self.finished = False  # set on the loop when the last event was read
        self._loop = loop
        self._lock = threading.Lock()  # guards _posted and _waiter between the worker and the loop
        self._posted: deque[ReplyEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None  # set while the coroutine waits for events
        self._taken: deque[ReplyEvent] = deque()  # taken from _posted, not yet returned by next_event
        self._on_cancel: list[Callable[[], None]] = []  # guarded by _lock

    def cancel(self) -> None:
        """The client is gone or the server stops: mark the job, and run what was asked to run then."""
        with self._lock:
            self.cancelled.set()
            callbacks, self._on_cancel = self._on_cancel, []
        for callback in callbacks:
            callback()

    def when_cancelled(self, callback: Callable[[], None]) -> None:
        """Call `callback` (from any thread) when the job is cancelled; at once if it already is.

        For work that does not poll `cancelled` often enough to stop within the server's half a
        second: a translation stops its own sequences this way, and only those.
        """
        with self._lock:
            if not self.cancelled.is_set():
                self._on_cancel.append(callback)
                return
        callback()

    def post(self, event: ReplyEvent) -> None:
        """From the worker thread: hand an event to the request's coroutine."""
        with self._lock:
            self._posted.append(event)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the server is shutting down
                self._loop.call_soon_threadsafe(_wake, waiter)

    async def next_events(self, timeout: float | None = None) -> list[ReplyEvent]:
        """Every event posted and not yet read, waiting for at least one; [] after `timeout` seconds."""
        if self._taken:
            events = list(self._taken)
            self._taken.clear()
        else:
            events = await self._take(timeout)
        if events and not isinstance(events[-1], TextPiece):
            self.finished = True
        return events

    async def next_event(self) -> ReplyEvent:
        """The next event, one at a time."""
        if not self._taken:
            self._taken.extend(await self._take(None))
        event = self._taken.popleft()
        if not isinstance(event, TextPiece):
            self.finished = True
        return event

    async def _take(self, timeout: float | None) -> list[ReplyEvent]:
        while True:
            with self._lock:
                if self._posted:
                    events = list(self._posted)
                    self._posted.clear()
                    return events
                waiter = self._waiter = self._loop.create_future()
            timer = self._loop.call_later(timeout, _wake, waiter) if timeout is not None else None
            try:
                await waiter
            finally:
                with self._lock:
                    if self._waiter is waiter:  # not woken by post(): by the timer, or cancelled
                        self._waiter = None
                if timer is not None:
                    timer.cancel()
            if timer is not None and not self._posted:
                return []


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # a waiter whose coroutine was cancelled, or already woken by the timer
        waiter.set_result(None)


def api_error_for(err: Exception) -> ApiError:
    """What a client is told when its reply failed with `err` (logged when it is our fault)."""
    if isinstance(err, ApiError):
        return err
    if isinstance(err, BadInputError):
        return ApiError(400, str(err))
    if isinstance(err, LlamadeskError):
        return ApiError(422, str(err))
    if isinstance(err, MemoryError):
        return ApiError(507, "the server ran out of memory for this request")
    print(f"llamadesk serve: internal error in a reply: {type(err).__name__}: {err}", flush=True)
    return ApiError(500, f"internal error ({type(err).__name__}); see the server's log")


EngineLoader = Callable[[Path, LoadSettings], object]


def _load_engine(path: Path, settings: LoadSettings):
    from llamadesk.app.engine.llama_engine import Engine  # loads llama.cpp: only in the server process

    return Engine.load(path, settings)


def _library_path(name: str) -> Path | None:
    from llamadesk.app.library.catalog import resolve_library_name

    return resolve_library_name(name)


class ModelPool:
    def __init__(
        self,
        served: dict[str, Path],
        load_settings: LoadSettings,
        queue_size: int,
        loader: EngineLoader = _load_engine,
        library_path: Callable[[str], Path | None] = _library_path,
        max_models: int = 1,
        memory_budget: int | None = None,
        memory_needed: Callable[[Path, LoadSettings], int] = memory_before_load,
        adapters: tuple[tuple[str, float], ...] = (),
        parallel: int = 1,
        prompt_lookup: bool = False,
    ):
        self._served = dict(served)  # names the operator gave with -m, with their files
        # serve --prompt-lookup: asked of every single-stream reply; the engine uses it on greedy ones.
        self._prompt_lookup = prompt_lookup
        self._load_settings = load_settings
        # serve --lora: LoRA adapters (file, scale) applied to the operator's -m models, not to
        # the library's others (an adapter fits the one base it was trained on).
        self._adapted = frozenset(served) if adapters else frozenset()
        self._adapters = adapters
        self._loader = loader
        self._library_path = library_path
        self._queue: JobQueue[Job | None] = JobQueue(queue_size)
        self._lock = threading.Lock()  # guards _current, _engine, _resident and _loaded across threads
        self._current: Job | None = None
        self._waiting_for_room: Job | None = None  # a job the worker holds until the batched decoder has room
        self._engine = None  # the engine of the model in use (or last used)
        self._resident: str | None = None
        self._loaded: OrderedDict[str, Any] = OrderedDict()  # every model in memory, least recently used first
        self._max_models = max_models
        self._memory_budget = memory_budget
        # With --parallel, each model also gets the batched decoder's context: counted in its need.
        self._contexts = 2 if parallel > 1 else 1
        self._memory_needed = (
            functools.partial(memory_before_load, contexts=self._contexts)
            if memory_needed is memory_before_load
            else memory_needed
        )
        self._memory: dict[str, int] = {}  # bytes each loaded model takes (counted only with a budget)
        self._parallel = parallel  # replies decoded together per model (1: one reply at a time)
        self._batches: dict[str, BatchedReplies] = {}  # each loaded model's batched decoder, made on first use
        self._closing = False
        self._thread = threading.Thread(target=self._work, name="llamadesk-model", daemon=True)

    # -- on the event loop --------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def preload(self, name: str) -> None:
        """Load `name` now, on the calling thread, before start(): `serve --preload`.

        Before the server listens, so a model that cannot be loaded (not a model, larger than the
        memory budget) is the operator's one line and exit 2; loaded inside the server's startup,
        it was uvicorn's traceback and exit 3.
        """
        assert not self._thread.is_alive(), "preload before the worker starts"
        try:
            self._engine_for(name)
        except ApiError as err:
            raise BadInputError(err.message) from None

    def served_names(self) -> list[str]:
        return list(self._served)

    def model_path(self, name: str) -> Path:
        """The file a request's model name means: a served name or a library name, never a path.

        Blocking (the library may assemble a starter's parts the first time): call it off the loop.
        """
        if name in self._served:
            return self._served[name]
        path = self._library_path(name)
        if path is None:
            raise ApiError(
                404,
                f"the model '{name}' does not exist here; GET /v1/models (Ollama: /api/tags) lists them",
                code="model_not_found",
            )
        self._served.setdefault(name, path)  # the library's answer stays valid while we run
        return path

    def submit(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop) -> Job:
        if self._closing:
            raise shutdown_error()
        job = Job(request, loop)
        try:
            # A job the worker holds until the batched decoder has room waits too (--parallel).
            with self._lock:
                held = self._waiting_for_room is not None
            self._queue.put_nowait(job, also_waiting=held)
        except QueueFull:
            raise ApiError(
                503,
                f"the server is busy: {self._queue.maxsize} requests are already waiting for the model; retry shortly",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from None
        return job

    def cancel(self, job: Job) -> None:
        """The client is gone: drop the job if it waits, stop the engine if it runs (or its
        sequence, when it is decoded with others)."""
        job.cancel()
        if self._queue.remove(job):  # it leaves the line now: its place is free for the next request
            job.post(ReplyFailed(self._why_not_started()))
            return
        with self._lock:
            if self._current is job and self._engine is not None:
                self._engine.request_stop()
            batches = list(self._batches.values())
        for batch in batches:  # outside the lock: a batch's decoder has locks of its own
            batch.cancel(job)

    def status(self) -> dict[str, object]:
        with self._lock:
            in_flight = sum(b.in_flight() for b in self._batches.values())
            status: dict[str, object] = {
                "model": self._resident,
                "loaded": list(self._loaded),
                "busy": self._current is not None or in_flight > 0,
                "queued": self._queue.qsize() + (self._waiting_for_room is not None),
            }
            if self._parallel > 1:
                status["parallel"] = self._parallel
                status["in_flight"] = in_flight
            if self._memory_budget is not None:
                status["memory_budget"] = self._memory_budget
                status["memory_in_use"] = sum(self._memory.get(name, 0) for name in self._loaded)
            return status

    def stop_all(self) -> None:
        """Shutting down: stop the replies in progress (each client gets what came, then a 503
        saying the reply is incomplete), fail the waiting ones with 503 and accept no more. Does
        not wait."""
        self._closing = True
        with self._lock:
            current = self._current
        if current is not None:
            current.shut_down = True
            self.cancel(current)
        with self._lock:
            batches = list(self._batches.values())
        for batch in batches:
            for job in batch.in_flight_jobs():
                job.shut_down = True
                self.cancel(job)
        for job in self._queue.drain():
            if job is not None:
                job.shut_down = True
                job.cancel()
                job.post(ReplyFailed(shutdown_error()))

    def close(self, timeout: float = 10.0) -> None:
        """Stop everything (stop_all), wait for the worker, and free the model."""
        self.stop_all()
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- on the worker thread -----------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                break
            if job.cancelled.is_set():
                # Its coroutine may still be waiting (a request that was not streaming): end it.
                job.post(ReplyFailed(self._why_not_started()))
                continue
            with self._lock:
                self._current = job
            if self._closing:
                # Taken from the queue as stop_all emptied it, after stop_all looked for the
                # current job (it sets _closing first): it must not start a reply now.
                job.shut_down = True
                job.post(ReplyFailed(shutdown_error()))
                with self._lock:
                    self._current = None
                continue
            try:
                self._run(job)
            except Exception as err:  # the worker must survive anything one request does
                job.post(ReplyFailed(api_error_for(err)))
            finally:
                with self._lock:
                    self._current = None
        with self._lock:
            engines = list(self._loaded.values())
            batches = list(self._batches.values())
            self._loaded.clear()
            self._batches.clear()
            self._engine, self._resident = None, None
        for batch in batches:  # replies still in flight end "stopped" (stop_all cancelled them)
            batch.close()
        for engine in engines:
            engine.close()

    def _engine_for(self, name: str):
        """The engine for `name`: kept in memory, or loaded after closing the least recently used
        ones until it fits `max_models` and the memory budget. A model to close first finishes
        the replies in flight on its batched decoder (the worker waits for them, and starts no
        other job meanwhile); models kept beside it go on decoding. A model larger than the whole
        budget is refused before anything is closed."""
        with self._lock:
            engine = self._loaded.get(name)
            if engine is not None:
                self._loaded.move_to_end(name)
                self._engine, self._resident = engine, name
                return engine
        path = self.model_path(name)
        settings = self._settings_for(name)
        need = 0
        if self._memory_budget is not None:
            need = self._memory_needed(path, settings)
            if need > self._memory_budget:
                raise ApiError(507, too_large_message(name, need, self._memory_budget), code="model_too_large")
        loaded = [(n, self._memory.get(n, 0)) for n in self._loaded]
        for old_name in models_to_close(loaded, need, self._memory_budget, self._max_models):
            with self._lock:
                old = self._loaded.pop(old_name)
                old_batch = self._batches.pop(old_name, None)
                self._memory.pop(old_name, None)
                if old is self._engine:
                    self._engine, self._resident = None, None
            if old_batch is not None:
                old_batch.wait_until_idle()  # a model is never closed under a reply
                old_batch.close()
            old.close()
        engine = self._loader(path, settings)
        with self._lock:
            self._loaded[name] = engine
            if self._memory_budget is not None:
                self._memory[name] = memory_when_loaded(engine, need, self._contexts)
            self._engine, self._resident = engine, name
        return engine

    def _unload(self, name: str) -> None:
        """Close `name` if it is in memory, after the replies in flight on it; nothing if it is not."""
        with self._lock:
            engine = self._loaded.pop(name, None)
            batch = self._batches.pop(name, None)
            self._memory.pop(name, None)
            if engine is not None and engine is self._engine:
                self._engine, self._resident = None, None
        if batch is not None:
            batch.wait_until_idle()  # a model is never closed under a reply
            batch.close()
        if engine is not None:
            engine.close()

    def _settings_for(self, name: str) -> LoadSettings:
        if name in self._adapted:
            return replace(self._load_settings, lora=self._adapters)
        return self._load_settings

    def _run(self, job: Job) -> None:
        started = time.perf_counter()
        request = job.request
        if request.unload:
            self._unload(request.model)
            job.post(ReplyDone("unload", None, 0.0, time.perf_counter() - started))
            return
        is_reply = request.work is None and (request.messages is not None or request.prompt is not None)
        batched = self._parallel > 1 and (is_reply or request.work is not None)
        # No wait for other models' replies here: a model kept in memory beside this one (--max-models,
        # --memory-budget) goes on decoding, and one that must be closed to make room is waited
        # for by _engine_for.
        engine = self._engine_for(request.model)
        load_seconds = time.perf_counter() - started
        if request.work is not None and batched:
            self._start_beside(job, engine, request.work)
            return
        if request.work is not None:
            job.post(request.work(engine, job, None))
            return
        if not is_reply:
            job.post(ReplyDone("load", None, load_seconds, time.perf_counter() - started))
            return
        use_chat = request.messages is not None and (request.prompt is None or engine.has_chat_template)
        if batched:
            self._start_batched(job, engine, use_chat, started, load_seconds)
            return
        sampling = replace(request.sampling, prompt_lookup=True) if self._prompt_lookup else request.sampling
        events = (
            engine.stream_chat(request.messages, sampling)
            if use_chat
            else engine.stream_completion(request.prompt or "", sampling)
        )
        stats, hit_stop, dropped = self._forward(job, engine, events, StopScanner(request.stop))
        job.post(reply_end(job, stats, hit_stop, dropped, load_seconds, started))

    def _batch_for(self, name: str, engine) -> BatchedReplies:
        with self._lock:
            batch = self._batches.get(name)
        if batch is not None and batch.broken:  # llama.cpp failed under it: the next reply gets a new one
            batch.close()
            batch = None
        if batch is None:
            from llamadesk.app.server.batched_replies import BatchedReplies

            # The decoder's own context, as large as the engine's: its replies share its cells.
            batch = BatchedReplies(engine.batched_decoder(self._parallel))
            with self._lock:
                self._batches[name] = batch
        return batch

    def _start_batched(self, job: Job, engine, use_chat: bool, started: float, load_seconds: float) -> None:
        request = job.request
        batch = self._batch_for(request.model, engine)
        self._wait_for_room(batch, job)
        if job.cancelled.is_set():
            job.post(ReplyFailed(self._why_not_started()))
            return
        tokens = (
            engine.chat_prompt_tokens(request.messages)
            if use_chat
            else engine.tokenize(request.prompt or "", add_bos=True, special=False)
        )
        batch.start(job, tokens, request.sampling, request.stop, started, load_seconds)

    def _why_not_started(self) -> ApiError:
        """The error for a cancelled job that never started: stop_all cancels the one the worker
        holds (waiting for room, with --parallel), whose client is still there and must hear 503,
        not 499 "went away"."""
        if self._closing:
            return shutdown_error()
        return ApiError(499, GONE_BEFORE_ITS_TURN)

    def _wait_for_room(self, batch: BatchedReplies, job: Job) -> None:
        """Hold `job` until the decoder has room, counted as queued meanwhile (/health)."""
        with self._lock:
            self._waiting_for_room = job
        try:
            batch.wait_for_room()
        finally:
            with self._lock:
                self._waiting_for_room = None

    def _start_beside(self, job: Job, engine, work: Callable[[Any, Job, Any], ReplyEvent]) -> None:
        """Other work (a translation) on its own thread, its sequences in the model's batched decoder."""
        batch = self._batch_for(job.request.model, engine)
        self._wait_for_room(batch, job)
        if job.cancelled.is_set():
            job.post(ReplyFailed(self._why_not_started()))
            return
        batch.run_beside(job, lambda decoder: work(engine, job, decoder))

    def _forward(self, job: Job, engine, events: Iterator, scanner: StopScanner) -> tuple[GenerationStats, bool, bool]:
        """Pass the engine's text to the job until it ends, hits a stop sequence or is cancelled;
        returns the stats, whether a stop sequence ended it, and whether text was dropped for a cancel.

        On a stop sequence or a cancel the engine is stopped and read to its end, so its stats (the
        usage counts) still arrive and the KV cache is left consistent for the next reply.
        """
        stopping = False
        hit_stop = False
        dropped = False
        stats: GenerationStats | None = None
        try:
            for event in events:
                if job.cancelled.is_set() and not stopping:
                    engine.request_stop()
                    stopping = True
                if isinstance(event, GenerationDone):
                    stats = event.stats
                elif isinstance(event, TextPiece) and stopping:
                    dropped = dropped or not hit_stop
                elif isinstance(event, TextPiece):
                    text, hit_stop = scanner.feed(event.text)
                    if text:
                        job.post(TextPiece(text))
                    if hit_stop:
                        engine.request_stop()
                        stopping = True
        finally:
            events.close()
        if not stopping:
            tail = scanner.flush()
            if tail:
                job.post(TextPiece(tail))
        if stats is None:
            raise LlamadeskError("the engine ended a reply without its stats")
        return stats, hit_stop, dropped


def finish_reason(stats: GenerationStats, hit_stop: bool) -> FinishReason:
    return "length" if stats.stop_reason in ("length", "context") and not hit_stop else "stop"


def reply_end(
    job: Job, stats: GenerationStats, hit_stop: bool, dropped: bool, load_seconds: float, began: float
) -> ReplyEvent:
    """The last event of a reply: ReplyDone, or a 503 when shutting down cut it short.

    A reply is cut short when the engine stopped it ("stopped": not at a stop sequence, which
    stops it too) or when text it made after the cancel was dropped. Cut short for a client that
    went away it still ends as done: nobody reads it. `began` is when the worker took the job
    (perf_counter) and `load_seconds` what loading the model took of it.
    """
    cut = not hit_stop and (dropped or stats.stop_reason == "stopped")
    if cut and job.shut_down:
        return ReplyFailed(shutdown_error(SHUT_DOWN_MID_REPLY))
    return ReplyDone(finish_reason(stats, hit_stop), stats, load_seconds, time.perf_counter() - began)
