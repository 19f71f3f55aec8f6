"""The callers' side of a BatchedDecoder: what a submitted sequence gives back, and lockstep membership.

A caller submits from its own thread and keeps a SequenceHandle: it waits on it (`result`), or
asks to be called when the sequence ends (`add_done_callback`, for a server that must not block a
thread per reply). The decoder's thread sets the outcome; nothing here touches llama.cpp.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from llamadesk.app.engine.types import GenerationStats, TextPiece

# Called with each piece of a sequence's text, in the decoder's thread; True ends the sequence.
PieceCallback = Callable[[TextPiece], bool]


@dataclass
class SequenceResult:
    """What one sequence produced: its text pieces in order and what it cost."""

    pieces: list[TextPiece]
    stats: GenerationStats

    @property
    def text(self) -> str:
        return "".join(piece.text for piece in self.pieces)


class LockstepMember:
    """One caller thread of a lockstep group (BatchedDecoder.join_lockstep); leave() when it is done.

    `order` places this member's next sequence among others admitted in the same step (the
    lower first): the caller sets it from its work (a translation chain's first segment), so
    the placement does not depend on which thread happened to submit first.
    """

    def __init__(self, on_leave: Callable[[LockstepMember], None]):
        self.order = 0
        self.left = False  # set by the decoder, under its lock, when leave() is first called
        self._on_leave = on_leave

    def leave(self) -> None:
        """The decoder no longer waits for this caller (idempotent)."""
        self._on_leave(self)


class SequenceHandle:
    """A submitted sequence; `result()` waits for it."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._result: SequenceResult | None = None
        self._error: BaseException | None = None
        self.cancel_requested = False  # set by BatchedDecoder.cancel; read by the decoder thread
        self._callbacks: list[Callable[[SequenceHandle], None]] = []
        self._callbacks_lock = threading.Lock()

    def result(self, timeout: float | None = None) -> SequenceResult:
        if not self._done.wait(timeout):
            raise TimeoutError("the sequence is still decoding")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def done(self) -> bool:
        return self._done.is_set()

    def add_done_callback(self, callback: Callable[[SequenceHandle], None]) -> None:
        """Call `callback(handle)` when the sequence ends (at once if it has): for callers that
        must not block a thread per sequence (a server). It runs on the decoder thread, so it must
        be quick and must not call the decoder."""
        with self._callbacks_lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def set_outcome(self, result: SequenceResult | None, error: BaseException | None = None) -> None:
        """(The decoder's side.) The sequence ended with `result`, or failed with `error`."""
        self._result, self._error = result, error
        with self._callbacks_lock:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)
