"""The one thread that owns the model: loads it, fits prompts, streams replies, closes it.

The UI never calls llama.cpp. It hands jobs to the EngineHost (a queue), and the host's thread
answers with the messages below, posted to whoever asked. Tokens are not posted one by one: the
thread appends them to a buffer and posts a single ReplyProgress while the previous one is still
unread, so however fast the model is, the UI takes everything that arrived since its last frame
in one go and never falls behind.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from textual.message import Message
from textual.message_pump import MessagePump

from llamadesk.app.chat.context_fit import FittedPrompt, fit_context
from llamadesk.app.chat.prompt_cache import PromptCache
from llamadesk.app.core.errors import Interrupted, LlamadeskError
from llamadesk.app.engine.types import ChatMessage, GenerationDone, GenerationStats, LoadSettings, Sampling, StreamEvent


class ChatEngine(Protocol):
    """What the UI needs of a loaded model (llama_engine.Engine, or a fake in fast tests)."""

    @property
    def n_ctx(self) -> int: ...

    def chat_prompt_tokens(self, messages: Sequence[ChatMessage]) -> list[int]: ...

    def stream_chat(self, messages: Sequence[ChatMessage], sampling: Sampling) -> Iterator[StreamEvent]: ...

    def request_stop(self) -> None: ...

    def close(self) -> None: ...


EngineLoader = Callable[[str, LoadSettings], ChatEngine]


@dataclass(frozen=True)
class ModelInfo:
    """What the status bar shows about the loaded model."""

    spec: str
    name: str
    backend: str
    n_threads: int
    n_ctx: int


def load_llama_engine(spec: str, settings: LoadSettings) -> ChatEngine:
    """The real loader: resolve a model name or path and load it with llama.cpp."""
    from llamadesk.app.engine.llama_engine import Engine  # imports llama.cpp: only in the host's thread
    from llamadesk.app.library.catalog import resolve_model

    return Engine.load(resolve_model(spec), settings)


def describe_engine(spec: str, engine: ChatEngine) -> ModelInfo:
    summary = getattr(engine, "summary", None)
    settings = getattr(engine, "settings", None)
    backend = getattr(engine, "backend", None)
    if backend is None:
        from llamadesk.app.engine.build_info import build_info

        backend = build_info().backend
    return ModelInfo(
        spec=spec,
        name=summary.name if summary is not None else spec,
        backend=backend,
        n_threads=settings.n_threads if settings is not None else 0,
        n_ctx=engine.n_ctx,
    )


# -- messages the host posts ----------------------------------------------------------------


class ModelLoading(Message):
    def __init__(self, spec: str) -> None:
        super().__init__()
        self.spec = spec


class ModelLoaded(Message):
    def __init__(self, info: ModelInfo) -> None:
        super().__init__()
        self.info = info


class EngineFailed(Message):
    """Loading or generating failed; `error` is written for the user."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class ReplyStarted(Message):
    """The prompt was fitted into the context (and `restored_tokens` of it loaded from the prompt
    cache on disk); tokens follow."""

    def __init__(self, reply_id: int, fitted: FittedPrompt, n_ctx: int, restored_tokens: int = 0) -> None:
        super().__init__()
        self.reply_id = reply_id
        self.fitted = fitted
        self.n_ctx = n_ctx
        self.restored_tokens = restored_tokens


class ReplyProgress(Message):
    """New text is waiting: call EngineHost.take_text()."""

    def __init__(self, reply_id: int) -> None:
        super().__init__()
        self.reply_id = reply_id


class ReplyDone(Message):
    """The reply ended (normally, at a limit, or stopped); `text` is all of it."""

    def __init__(self, reply_id: int, text: str, stats: GenerationStats) -> None:
        super().__init__()
        self.reply_id = reply_id
        self.text = text
        self.stats = stats

    @property
    def stopped(self) -> bool:
        return self.stats.stop_reason == "stopped"


# -- jobs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyRequest:
    """Everything the host needs to answer: which model, what conversation, how to sample."""

    model: str
    load: LoadSettings
    system_prompt: str
    turns: tuple[ChatMessage, ...]
    sampling: Sampling
    keep_from: int = 0
    conversation_id: int | None = None  # a stored conversation: its KV cache is kept on disk (prompt_cache.py)


@dataclass(frozen=True)
class _Load:
    spec: str
    settings: LoadSettings
    reply_to: MessagePump


@dataclass(frozen=True)
class _Reply:
    reply_id: int
    request: ReplyRequest
    reply_to: MessagePump


@dataclass(frozen=True)
class _Work:
    """Any other use of the model (translation): `work(engine)` runs in the host's thread."""

    spec: str
    settings: LoadSettings
    work: Callable[[ChatEngine], None]
    reply_to: MessagePump
    stop: Callable[[], None] | None = None  # asks `work` to end soon (quitting the app)


@dataclass(frozen=True)
class _Forget:
    """Remove a deleted conversation's prompt-cache files once the work queued before is done."""

    conversation_id: int


_SHUTDOWN = object()
PROMPT_CACHE_CLOSE_TIMEOUT_S = 3.0


class EngineHost:
    """Owns at most one loaded model, in one thread; everything else talks to it by job and message."""

    def __init__(self, loader: EngineLoader = load_llama_engine, prompt_cache: PromptCache | None = None):
        self._loader = loader
        self.prompt_cache = prompt_cache
        self._jobs: queue.Queue[object] = queue.Queue()
        self._engine: ChatEngine | None = None
        self._loaded: tuple[str, LoadSettings] | None = None
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._progress_posted = False
        self._reply_id = 0
        self._active_reply: int | None = None
        # Chat replies asked for and not yet ended, and whether one holds the engine now. The engine's
        # stop flag is shared with other work (a translation): only a chat reply may be stopped by it.
        self._replies_unfinished = 0
        self._replying = False
        self.info: ModelInfo | None = None
        self._work_stops: list[Callable[[], None]] = []  # of the work queued or running

    # -- called from the UI thread ----------------------------------------------------------

    def load(self, spec: str, settings: LoadSettings, reply_to: MessagePump) -> None:
        """Load `spec` (closing the model loaded before) unless it is already loaded."""
        self._jobs.put(_Load(spec, settings, reply_to))

    def reply(self, request: ReplyRequest, reply_to: MessagePump) -> int:
        """Queue a reply (any reply still streaming stops; other work goes on); returns the id its messages carry."""
        with self._lock:
            self._reply_id += 1
            self._active_reply = self._reply_id
            self._pending.clear()
            self._progress_posted = False
            self._replies_unfinished += 1
            self._stop_chat_reply()  # a reply still streaming ends; the new one clears the flag
            reply_id = self._reply_id
        self._jobs.put(_Reply(reply_id, request, reply_to))
        return reply_id

    @property
    def replying(self) -> bool:
        """Whether a chat reply is queued or running: work asked for now waits for it."""
        with self._lock:
            return self._replies_unfinished > 0

    def run_with_model(
        self,
        spec: str,
        settings: LoadSettings,
        work: Callable[[ChatEngine], None],
        reply_to: MessagePump,
        stop: Callable[[], None] | None = None,
    ) -> None:
        """Load `spec` if needed, then call `work(engine)` in the host's thread (it posts its own messages).

        `stop` (thread-safe) asks the work to end soon; shutdown calls it, or the app would wait for it."""
        if stop is not None:
            with self._lock:
                self._work_stops.append(stop)
        self._jobs.put(_Work(spec, settings, work, reply_to, stop))

    def forget_conversation(self, conversation_id: int) -> None:
        """Remove a deleted conversation's prompt-cache files: now, and again after its reply.

        A reply just stopped still ends in the host's thread and queues its cache write; removing
        the files only now would leave that one (the conversation's tokens and KV) on disk."""
        if self.prompt_cache is None:
            return
        self.prompt_cache.forget(conversation_id)
        self._jobs.put(_Forget(conversation_id))

    def take_text(self) -> str:
        """Everything streamed since the last call (the UI calls it on ReplyProgress)."""
        with self._lock:
            text = "".join(self._pending)
            self._pending.clear()
            self._progress_posted = False
        return text

    def stop(self) -> None:
        """Stop the chat reply in progress at once (llama.cpp aborts mid-decode); other work goes on."""
        with self._lock:
            self._active_reply = None
            self._pending.clear()
            self._stop_chat_reply()

    def _stop_chat_reply(self) -> None:
        # Under the lock, so the host's thread cannot move on to a translation between the check
        # and the stop. A stop that comes as a reply ends is harmless: every stream clears the flag.
        if self._replying and self._engine is not None:
            self._engine.request_stop()

    def shutdown(self) -> None:
        """Stop whatever runs (a reply or other work) and let the thread close the model and end."""
        self.stop()
        with self._lock:
            engine, work_stops = self._engine, list(self._work_stops)
        for stop_work in work_stops:
            stop_work()  # a translation ends at its next token, and the one queued never starts
        if engine is not None:
            engine.request_stop()
        self._jobs.put(_SHUTDOWN)

    # -- the host's thread ------------------------------------------------------------------

    def serve(self) -> None:
        """The worker's body: run jobs until shutdown, then close the model."""
        try:
            while (job := self._jobs.get()) is not _SHUTDOWN:
                try:
                    if isinstance(job, _Load):
                        self._ensure_loaded(job.spec, job.settings, job.reply_to)
                    elif isinstance(job, _Reply):
                        self._answer_in_turn(job)
                    elif isinstance(job, _Work):
                        self._run_work(job)
                    elif isinstance(job, _Forget):
                        self._forget(job.conversation_id)
                except LlamadeskError as err:
                    job.reply_to.post_message(EngineFailed(str(err)))  # type: ignore[attr-defined]
                except Exception as err:  # noqa: BLE001 - one failed reply must not end the app
                    job.reply_to.post_message(  # type: ignore[attr-defined]
                        EngineFailed(f"the model failed ({type(err).__name__}: {err}); try again or pick another model")
                    )
        finally:
            self._close()
            if self.prompt_cache is not None:
                # The last reply's cache file is being written: a moment more, then it is left.
                self.prompt_cache.close(timeout=PROMPT_CACHE_CLOSE_TIMEOUT_S)

    def _run_work(self, job: _Work) -> None:
        try:
            job.work(self._ensure_loaded(job.spec, job.settings, job.reply_to))
        finally:
            if job.stop is not None:
                with self._lock:
                    self._work_stops.remove(job.stop)

    def _forget(self, conversation_id: int) -> None:
        assert self.prompt_cache is not None  # only queued with a cache
        # The write the stopped reply queued runs in the cache's own thread: wait for it first.
        self.prompt_cache.flush(timeout=PROMPT_CACHE_CLOSE_TIMEOUT_S)
        self.prompt_cache.forget(conversation_id)

    def _close(self) -> None:
        with self._lock:
            engine, self._engine, self._loaded = self._engine, None, None
        if engine is not None:
            engine.close()

    def _ensure_loaded(self, spec: str, settings: LoadSettings, reply_to: MessagePump) -> ChatEngine:
        if self._engine is not None and self._loaded == (spec, settings):
            return self._engine
        reply_to.post_message(ModelLoading(spec))
        # Close first: two models side by side may not fit, and the old one's memory must come back.
        self._close()
        engine = self._loader(spec, settings)
        with self._lock:
            self._engine, self._loaded = engine, (spec, settings)
        self.info = describe_engine(spec, engine)
        reply_to.post_message(ModelLoaded(self.info))
        return engine

    def _is_active(self, reply_id: int) -> bool:
        with self._lock:
            return self._active_reply == reply_id

    def _answer_in_turn(self, job: _Reply) -> None:
        """Answer `job`, marked as the chat reply that holds the engine (only it can be stopped)."""
        with self._lock:
            self._replying = True
        try:
            self._answer(job)
        finally:
            with self._lock:
                self._replying = False
                self._replies_unfinished -= 1

    def _answer(self, job: _Reply) -> None:
        request = job.request
        engine = self._ensure_loaded(request.model, request.load, job.reply_to)
        if not self._is_active(job.reply_id):
            # Stopped or replaced before it began: still say it is done, so the UI never waits.
            job.reply_to.post_message(ReplyDone(job.reply_id, "", not_started_stats(engine.n_ctx)))
            return
        try:
            fitted = fit_context(
                request.system_prompt,
                request.turns,
                lambda messages: len(engine.chat_prompt_tokens(messages)),
                engine.n_ctx,
                request.sampling.max_tokens,
                request.keep_from,
            )
        except Interrupted:
            # Esc (or quit) while the chat template was still rendering: the engine stopped the
            # render itself, so this thread is free again; the reply ends with nothing in it.
            job.reply_to.post_message(ReplyDone(job.reply_id, "", not_started_stats(engine.n_ctx)))
            return
        cache = self.prompt_cache if request.conversation_id is not None else None
        restored = 0
        if cache is not None:
            # Tokenized already (fit_context counted them): the engine hands back its memo.
            restored = cache.restore(engine, request.conversation_id, engine.chat_prompt_tokens(fitted.messages))
        job.reply_to.post_message(ReplyStarted(job.reply_id, fitted, engine.n_ctx, restored))
        parts: list[str] = []
        finished = False
        # Closed before the cache copies the KV state: an open stream still holds the model, and
        # the copy would find it busy.
        with contextlib.closing(engine.stream_chat(fitted.messages, request.sampling)) as stream:
            for event in stream:
                if isinstance(event, GenerationDone):
                    job.reply_to.post_message(ReplyDone(job.reply_id, "".join(parts), event.stats))
                    finished = True
                    break
                parts.append(event.text)
                with self._lock:
                    active = self._active_reply == job.reply_id
                    post = active and not self._progress_posted
                    if active:
                        self._pending.append(event.text)
                        self._progress_posted = True
                if not active:
                    # The stop came before the stream began (the engine clears its stop flag when
                    # a stream starts): say it again, so this token is the last.
                    engine.request_stop()
                if post:
                    job.reply_to.post_message(ReplyProgress(job.reply_id))

        if finished and cache is not None:
            # After the reply is out: the copy takes milliseconds, the writing its own thread.
            cache.save(engine, request.conversation_id)


def not_started_stats(n_ctx: int) -> GenerationStats:
    """The stats of a reply stopped before its first token."""
    return GenerationStats(0, 0, 0, 0.0, 0.0, 0.0, 0, n_ctx, "stopped")
