"""Replies to concurrent requests decoded together (`serve --parallel N`).

A reply's tokens come one llama_decode each, and on a CPU that decode's time is reading the
weights; the engine's BatchedDecoder reads them once for every reply in flight (up to N), so
four clients get their replies in much less than four times the time of one. The model pool's
worker prepares each job (its prompt's tokens, through the chat template) and hands it here; the
decoder's thread streams the text back to the job through the same stop-string scanner as a
single reply, and ends it when its client goes away. The worker does not wait for the reply: it
takes the next job, and waits only when N replies are in flight or when another model is wanted.
Other work (a translation) runs beside the replies on a thread of its own, its segments decoded
in the same batches, so a long document does not hold up everyone else's replies.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from llamadesk.app.engine.types import Sampling, TextPiece
from llamadesk.app.server.model_pool import Job, ReplyEvent, ReplyFailed, api_error_for, reply_end
from llamadesk.app.server.stop_strings import StopScanner

if TYPE_CHECKING:  # the decoder (llama.cpp, numpy) loads with the engine, in the server process only
    from llamadesk.app.engine.batched_decoder import BatchedDecoder
    from llamadesk.app.engine.sequence_handle import SequenceHandle


class BatchedReplies:
    """Up to `n_sequences` replies of one loaded model in flight at once; close() frees the decoder."""

    def __init__(self, decoder: BatchedDecoder):
        self._decoder = decoder
        self.n_sequences = decoder.n_sequences
        self._changed = threading.Condition()  # guards _in_flight; never held while calling the decoder
        # A reply's sequence, or None for other work (a translation) that stops its own sequences
        # when its job is cancelled (Job.when_cancelled).
        self._in_flight: dict[Job, SequenceHandle | None] = {}
        self._beside: list[threading.Thread] = []  # run_beside's threads (they use the engine too)

    def start(
        self,
        job: Job,
        tokens: list[int],
        sampling: Sampling,
        stop: tuple[str, ...],
        began: float,
        load_seconds: float,
    ) -> None:
        """Queue `job`'s reply after `tokens`; its events reach the job from the decoder's thread.

        `began` is when the worker took the job (perf_counter) and `load_seconds` what loading
        the model took of it, for the reply's timings.

        Raises BadInputError (a prompt longer than the context) before anything is queued.
        """
        scanner = StopScanner(stop)
        hit_stop = False
        dropped = False  # a piece came after the cancel and was not sent: the reply is cut short

        def on_piece(piece: TextPiece) -> bool:
            nonlocal hit_stop, dropped
            if job.cancelled.is_set():
                dropped = True  # the decoder ends it as "end" then: only this says it was cut
                return True
            text, hit_stop = scanner.feed(piece.text)
            if text:
                job.post(TextPiece(text))
            return hit_stop

        def on_done(handle: SequenceHandle) -> None:
            # Out of the count first, then the last event: whoever reads the end of the reply
            # (a client, then /health) finds the decoder's place already free.
            with self._changed:
                self._in_flight.pop(job, None)
                self._changed.notify_all()
            try:
                stats = handle.result(0).stats
            except Exception as error:  # this reply failed (a grammar llama.cpp refused, the decoder): the others go on
                job.post(ReplyFailed(api_error_for(error)))
                return
            if not hit_stop and not job.cancelled.is_set():
                tail = scanner.flush()
                if tail:
                    job.post(TextPiece(tail))
            job.post(reply_end(job, stats, hit_stop, dropped, load_seconds, began))

        # Not under _changed: the decoder may call on_done with its own lock held, which then
        # takes _changed; holding _changed while taking the decoder's lock could deadlock.
        handle = self._decoder.submit(tokens, sampling, on_piece)
        with self._changed:
            self._in_flight[job] = handle
        handle.add_done_callback(on_done)  # registered after the entry exists: on_done always removes it
        if job.cancelled.is_set():  # the client left while the prompt was being prepared
            self._decoder.cancel(handle)

    def run_beside(self, job: Job, work: Callable[[BatchedDecoder], ReplyEvent]) -> None:
        """Run `work` on a thread of its own with this decoder, so that its model calls (a
        translation's segments) are decoded beside the replies in flight; it counts as one job in
        flight until it returns its last event, which is then posted (an exception as a failure)."""

        def run() -> None:
            try:
                last = work(self._decoder)
            except Exception as error:  # the work failed, not the server: its client is told
                last = ReplyFailed(api_error_for(error))
            with self._changed:  # out of the count first, then the last event, as for a reply
                self._in_flight.pop(job, None)
                self._changed.notify_all()
            job.post(last)

        thread = threading.Thread(target=run, name="llamadesk-beside", daemon=True)
        with self._changed:
            self._in_flight[job] = None
            self._beside = [t for t in self._beside if t.is_alive()] + [thread]
        thread.start()

    @property
    def broken(self) -> bool:
        """Whether the decoder failed and must be replaced (its replies in flight have failed)."""
        return self._decoder.failed

    def cancel(self, job: Job) -> bool:
        """End `job`'s reply if it is in flight here (its client went away); True if it was."""
        with self._changed:
            if job not in self._in_flight:
                return False
            handle = self._in_flight[job]
        if handle is not None:  # other work stops its own sequences (Job.when_cancelled)
            self._decoder.cancel(handle)
        return True

    def in_flight(self) -> int:
        with self._changed:
            return len(self._in_flight)

    def in_flight_jobs(self) -> list[Job]:
        with self._changed:
            return list(self._in_flight)

    def wait_for_room(self) -> None:
        """Block until fewer than n_sequences replies are in flight."""
        with self._changed:
            while len(self._in_flight) >= self.n_sequences:
                self._changed.wait()

    def wait_until_idle(self) -> None:
        """Block until every reply in flight has ended (before the model is closed or used alone)."""
        with self._changed:
            while self._in_flight:
                self._changed.wait()

    def close(self, timeout: float = 10.0) -> None:
        """Stop what is still in flight and free the decoder's context.

        Work run beside the replies ends first (its sequences are stopped, so it returns at once):
        it tokenizes with the engine, which its owner closes next.
        """
        self._decoder.request_stop()
        with self._changed:
            beside = list(self._beside)
        for thread in beside:
            thread.join(timeout)
        self._decoder.close()
