"""Several sequences advanced by one llama_decode per step (continuous batching).

Generating one token reads every weight of the model once; on a CPU that read, not the
arithmetic, sets the speed. A batch that carries the next token of several sequences reads the
weights once for all of them, so eight sequences decode in much less than eight times the time of
one (llama-batched-bench shows it). A BatchedDecoder owns its own llama.cpp context with one
sequence id per slot and a thread that runs the steps: each step decodes the last token of every
sequence that is generating plus as much of waiting prompts as the batch holds, then samples each
sequence from its own logits row with its own sampler (token_sampler.py) and checks its own stops.

Callers submit from any thread and wait for their sequence only (`generate`), so a caller with
sequential logic (a translator that retries) runs in its own thread while the decoder batches
whatever all callers have in flight. The KV cache is unified across slots: a new prompt that
starts like a sequence already in the cache (the same few-shot examples, the same conversation)
gets that prefix by reference (llama_memory_seq_cp) and decodes only the rest.

A `batch_invariant` decoder (on an engine loaded so, batch_invariance.py) gives each slot a KV
stream of its own instead, n_ctx cells each, and reads prompts UNTILED_ROWS tokens a step: its
sequences then come out as decoding each alone would give them. A prefix is taken from another
slot by copying that slot's stream (llama.cpp copies whole streams), then trimming it. Such a
decoder keeps the sequences in flight in slots 0..k-1 (llama.cpp puts streams in one weight pass
only as a run of consecutive ids) and, where the output product takes logits rows in tiles
(output_tiles.py), asks for whole tiles, with filler tokens on the free slots if need be.

Which tokens share a batch changes what llama.cpp computes for each of them (its CPU kernels
take other paths, and round differently, for a token decoded beside others), so a run whose
batches follow the callers' timing is not repeatable. Callers that want the same output from
the same input every time join in lockstep (`join_lockstep`): the decoder then steps only while
each of them has a sequence in flight, and admits waiting sequences in the order the callers
give, so every batch is a function of the work, not of the threads' timing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import llama_cpp
import numpy as np

from llamadesk.app.core.errors import BadInputError, LlamadeskError, PromptTooLong
from llamadesk.app.engine.batch_invariance import UNTILED_ROWS
from llamadesk.app.engine.lora_context import LoadedAdapter, set_adapters_on_context
from llamadesk.app.engine.output_tiles import padded_rows
from llamadesk.app.engine.prefix_shelf import MAX_SHELVED_TOKENS
from llamadesk.app.engine.prefix_shelf import WORTH_KEEPING as WORTH_SHELVING
from llamadesk.app.engine.sequence_handle import LockstepMember, PieceCallback, SequenceHandle, SequenceResult
from llamadesk.app.engine.stop_flag import StopFlag
from llamadesk.app.engine.token_prefix import common_prefix
from llamadesk.app.engine.token_sampler import TokenSampler, TokenText, token_logprob
from llamadesk.app.engine.types import GenerationStats, Sampling, StopReason, TextPiece, generation_rate
from llamadesk.app.engine.utf8_stream import Utf8Stream

# Shared prompt tokens that make a new sequence wait a step for another to read them: decoding 32
# tokens in a batch costs about what one step of waiting does.
WORTH_WAITING_FOR = 32

# Sequence ids beyond the slots that keep prefixes a slot gave up (see _shelve): two, for callers
# that alternate between two long prompts (translation's few-shot prompt and its strict retry).
SHELVES = 2


@dataclass
class _Request:
    tokens: list[int]
    sampling: Sampling
    on_piece: PieceCallback | None
    handle: SequenceHandle
    ignore_end: bool  # benchmarks: generate exactly max_tokens, as llama-batched-bench does
    member: LockstepMember | None = None
    order: tuple[int, int] = (0, 0)  # admission order among requests waiting together
    submitted: float = field(default_factory=time.perf_counter)


@dataclass
class _Sequence:
    """A request while it occupies a slot (touched only by the decoder thread)."""

    request: _Request
    slot: int
    sampler: TokenSampler
    pending: list[int]  # tokens to decode next: the prompt's unread tail, then each sampled token
    position: int  # the position of pending[0]
    cached: int  # prompt tokens that came from the cache
    budget: int
    pieces: list[TextPiece] = field(default_factory=list)
    utf8: Utf8Stream = field(default_factory=Utf8Stream)
    generated: int = 0
    admitted: int = 0  # the how-manieth admission this was (the newest gives way when the cache is full)
    first_token_at: float | None = None
    ended_on_eog: bool = False
    pending_logprob: float = 0.0
    pending_tokens: int = 0

    @property
    def prefilling(self) -> bool:
        return self.first_token_at is None


class BatchedDecoder:
    """Decodes up to `n_sequences` sequences at once on a model already loaded by an Engine."""

    def __init__(
        self,
        model: llama_cpp.llama_model_p,
        *,
        n_sequences: int,
        n_ctx: int,
        n_batch: int,
        n_threads: int,
        kv_type: int,
        flash_attn: bool,
        adapters: Sequence[LoadedAdapter] = (),
        batch_invariant: bool = False,
        output_tile: int = 1,
    ):
        """`output_tile`: logits rows the model's output product takes per sweep (output_tiles.py)."""
        if n_sequences < 1:
            raise BadInputError("a batched decoder needs at least one sequence")
        # llama.cpp reserves an output row per sequence it may hold, within the batch (a generation
        # step decodes one token of every sequence at once): a smaller batch (bench's, sized to
        # `-p 0 -n 1`) failed its assert n_outputs_max <= n_outputs_max and aborted the process.
        n_batch = max(n_batch, n_sequences + SHELVES)
        params = llama_cpp.llama_context_default_params()
        # llama.cpp divides n_ctx between the streams when each sequence has its own.
        params.n_ctx = n_ctx * (n_sequences + SHELVES) if batch_invariant else n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = n_sequences + SHELVES
        params.n_threads = params.n_threads_batch = n_threads
        params.type_k = params.type_v = kv_type
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        # Unified: slots share prefixes by reference, and any slot may use the whole context.
        # Batch-invariant: a stream per sequence, so that its cells sit as they would alone.
        params.kv_unified = not batch_invariant
        params.swa_full = False  # as llama.cpp's own tools: a sliding-window layer keeps only its window
        params.no_perf = True
        context = llama_cpp.llama_init_from_model(model, params)
        if not context:
            raise LlamadeskError(
                f"llama.cpp could not create a context for {n_sequences} sequences of {n_ctx} tokens; "
                "try fewer sequences"
            )
        # The engine's LoRA adapters: llama.cpp applies them per context, and without them here a
        # batched run answered as the bare base model.
        if not set_adapters_on_context(context, adapters):
            llama_cpp.llama_free(context)
            raise LlamadeskError("llama.cpp could not apply the adapters to the batched decoder's context")
        self._context = context
        self._memory = llama_cpp.llama_get_memory(context)
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self._n_swa = llama_cpp.llama_model_n_swa(model)
        self.n_sequences = n_sequences
        self.batch_invariant = batch_invariant
        self.n_ctx = llama_cpp.llama_n_ctx_seq(context)  # what one sequence may use
        self.n_batch = n_batch
        self.output_tile = output_tile
        # Tokens decoded only to round a step's logits rows up to whole tiles: (sequence id, position).
        self._fillers: list[tuple[int, int]] = []
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._tokens_view = np.ctypeslib.as_array(self._batch.token, shape=(n_batch,))
        self._positions_view = np.ctypeslib.as_array(self._batch.pos, shape=(n_batch,))
        self._logits_view = np.ctypeslib.as_array(self._batch.logits, shape=(n_batch,))
        np.ctypeslib.as_array(self._batch.n_seq_id, shape=(n_batch,))[:] = 1
        self._seq_ids = [self._batch.seq_id[i] for i in range(n_batch)]
        self._text_of = TokenText(self._vocab)
        self._stop = StopFlag()
        self._stop.install(context)
        # What each slot's cells hold (positions 0..len-1), so a new prompt can start from it.
        # Slots 0..n_sequences-1 decode; the ids after them are shelves that only hold a prefix.
        self._slot_tokens: list[list[int]] = [[] for _ in range(n_sequences + SHELVES)]
        self._shelf_used = dict.fromkeys(range(n_sequences, n_sequences + SHELVES), 0)  # last use, for LRU
        # How many of each slot's first tokens a second prompt has already started with: a prefix
        # that has come back once (few-shot examples, a strict retry's header) is worth a shelf more
        # than one prompt's own text, which no later prompt shares.
        self._shared: list[int] = [0] * (n_sequences + SHELVES)
        self._active: dict[int, _Sequence] = {}
        self._queue: list[_Request] = []
        self._members = 0  # lockstep callers not yet left (join_lockstep)
        self._submitted = 0  # requests so far: the admission order of those without a member
        self._admissions = 0
        # Set when the cache could not hold every sequence in flight: no new one starts until one ends.
        self._cache_full = False
        self._lock = threading.Condition()
        self._closing = False
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="batched-decoder", daemon=True)
        self._thread.start()

    # -- the callers' side (any thread) ------------------------------------------------------

    def submit(
        self,
        tokens: Sequence[int],
        sampling: Sampling = Sampling(),
        on_piece: PieceCallback | None = None,
        *,
        ignore_end: bool = False,
        member: LockstepMember | None = None,
    ) -> SequenceHandle:
        """Queue a sequence: decode `tokens`, then generate after them as `sampling` says.

        A lockstep `member` submits all it has in flight at once (within `starting_together`), then waits.
        """
        if not tokens:
            raise BadInputError("the prompt is empty (no tokens); give the model some text to continue")
        if len(tokens) >= self.n_ctx:
            raise PromptTooLong(
                f"the prompt is {len(tokens)} tokens but the batched context holds {self.n_ctx}; shorten it"
            )
        handle = SequenceHandle()
        request = _Request(list(tokens), sampling, on_piece, handle, ignore_end, member)
        with self._lock:
            if self._closing:
                raise LlamadeskError("the batched decoder is closed")
            if self._failed is not None:
                raise LlamadeskError(f"the batched decoder failed: {self._failed}")
            if member is not None and member.left:
                raise LlamadeskError("this caller already left the lockstep group")
            self._submitted += 1
            # Members first, by the order they give; everyone else after them, first come first served.
            request.order = (0, member.order) if member is not None else (1, self._submitted)
            self._queue.append(request)
            self._lock.notify_all()
        return handle

    def generate(
        self,
        tokens: Sequence[int],
        sampling: Sampling = Sampling(),
        on_piece: PieceCallback | None = None,
        *,
        member: LockstepMember | None = None,
    ) -> SequenceResult:
        """submit() and wait for the result (the caller's thread blocks; others keep decoding)."""
        return self.submit(tokens, sampling, on_piece, member=member).result()

    @property
    def failed(self) -> bool:
        """Whether llama.cpp failed under the decoder: it takes no more sequences (make a new one)."""
        return self._failed is not None

    def join_lockstep(self) -> LockstepMember:
        """A new caller the decoder waits for before each step, until it leaves.

        Join every member before any of them submits (from the thread that starts them), so the
        first step already waits for all; each member submits through `generate(member=...)`
        and must leave() when it has no more work, or the decoder waits for it forever.
        """
        with self._lock:
            self._members += 1
        return LockstepMember(self._leave)

    def _leave(self, member: LockstepMember) -> None:
        with self._lock:
            if not member.left:
                member.left = True
                self._members -= 1
                self._lock.notify_all()

    @contextlib.contextmanager
    def starting_together(self) -> Iterator[None]:
        """Sequences submitted inside the block are admitted in the same step.

        The decoder otherwise starts whatever has arrived when it looks, so which sequences share
        a batch depends on timing; and llama.cpp's CPU kernels round a little differently for a
        token decoded beside others, enough to flip a near-tie in greedy decoding. Starting a
        known set together makes a run repeatable (tests, benchmarks).
        """
        with self._lock:
            yield

    def cancel(self, handle: SequenceHandle) -> None:
        """End one sequence, queued or in flight, with stop reason "stopped" before the next step
        (its client went away); the others go on. Safe from any thread."""
        with self._lock:
            handle.cancel_requested = True
            self._lock.notify_all()

    def request_stop(self) -> None:
        """End every sequence in flight or queued now, with stop reason "stopped"; safe from any thread."""
        self._stop.set()
        with self._lock:
            self._lock.notify_all()

    def close(self) -> None:
        """Stop the decoder thread and free the context (sequences still in flight end "stopped")."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._lock.notify_all()
        self._stop.set()
        self._thread.join()
        llama_cpp.llama_batch_free(self._batch)
        llama_cpp.llama_free(self._context)

    def __enter__(self) -> BatchedDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the decoder thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    while not self._closing and not self._stop.is_set() and not self._ready():
                        self._lock.wait()
                    if self._closing:
                        break
                    if self._stop.is_set():
                        self._stop_everything()
                        continue
                    self._end_cancelled()
                    self._admit()
                    if self.batch_invariant:
                        self._compact()
                self._step()
        except BaseException as error:  # a decoder failure must reach every waiting caller, not vanish
            with self._lock:
                self._failed = error
                waiting = [s.request for s in self._active.values()] + self._queue
                self._active.clear()
                self._queue.clear()
            for request in waiting:
                request.handle.set_outcome(None, LlamadeskError(f"batched decoding failed: {error}"))
            return
        with self._lock:
            self._stop_everything()

    def _ready(self) -> bool:
        """(Lock held.) Whether there is work and no lockstep member is still to submit its part."""
        if not self._queue and not self._active:
            return False
        if any(r.handle.cancel_requested for r in self._queue) or any(
            s.request.handle.cancel_requested for s in self._active.values()
        ):
            return True  # ending a cancelled sequence waits for no one
        # Members with something in flight (one may have several: a translator's sampled candidates).
        in_flight = {r.member for r in self._queue} | {s.request.member for s in self._active.values()}
        in_flight.discard(None)
        return len(in_flight) >= self._members

    def _stop_everything(self) -> None:
        """(Lock held.) Every sequence ends "stopped"; the cache is cleared (an abort leaves it partial)."""
        for sequence in list(self._active.values()):
            self._finish(sequence, "stopped")
        for request in self._queue:
            self._end_unstarted(request)
        self._queue.clear()
        llama_cpp.llama_memory_clear(self._memory, True)
        self._slot_tokens = [[] for _ in self._slot_tokens]
        self._shared = [0] * len(self._slot_tokens)
        self._stop.clear()

    def _end_cancelled(self) -> None:
        """(Lock held.) Sequences whose caller cancelled them end "stopped"; their cached tokens stay."""
        for request in [r for r in self._queue if r.handle.cancel_requested]:
            self._end_unstarted(request)  # before it leaves the queue, as _admit_queued does
            self._queue.remove(request)
        for sequence in [s for s in self._active.values() if s.request.handle.cancel_requested]:
            self._finish(sequence, "stopped")

    def _end_unstarted(self, request: _Request) -> None:
        """A queued request ends "stopped" with nothing decoded."""
        request.handle.set_outcome(SequenceResult([], _stats(request, 0, 0, None, "stopped", 0, self.n_ctx, False)))

    def _admit(self) -> None:
        """(Lock held.) Queued requests into free slots, each starting from the longest cached prefix."""
        if self._cache_full and self._active:
            return
        self._cache_full = False
        self._queue.sort(key=lambda r: r.order)
        deferred: list[_Request] = []
        try:
            self._admit_queued(deferred)
        finally:  # also when llama.cpp fails midway: whatever is queued is ended by _run's handler
            self._queue[:0] = deferred

    def _admit_queued(self, deferred: list[_Request]) -> None:
        # A request leaves the queue only once admitted, deferred or refused, so that a failure
        # while admitting it still reaches its caller (who would otherwise wait forever).
        while self._queue and len(self._active) < self.n_sequences:
            request = self._queue[0]
            source, common = self._longest_prefix(request.tokens)
            if self._prefix_coming(request.tokens, common):
                deferred.append(self._queue.pop(0))
                continue
            try:  # a grammar llama.cpp refuses is that caller's error, not the decoder's
                sampler = TokenSampler(self._vocab, self.n_vocab, request.sampling)
            except LlamadeskError as error:
                self._queue.pop(0)
                request.handle.set_outcome(None, error)
                continue
            free = [slot for slot in range(self.n_sequences) if slot not in self._active]
            self._admissions += 1
            if source in self._shelf_used:
                self._shelf_used[source] = self._admissions
            if source in free:
                slot = source
                self._shelve(slot, keep=common)
                llama_cpp.llama_memory_seq_rm(self._memory, slot, common, -1)
            else:
                # The free slot whose cache is least like this prompt is given up.
                slot = min(free, key=lambda s: common_prefix(self._slot_tokens[s], request.tokens))
                self._shelve(slot, keep=0)
                llama_cpp.llama_memory_seq_rm(self._memory, slot, -1, -1)
                if common > 0:
                    self._copy_prefix(source, slot, common)
                    self._shared[source] = max(self._shared[source], common)
            self._slot_tokens[slot] = request.tokens[:common]
            self._shared[slot] = common
            sampling = request.sampling
            budget = sampling.max_tokens if sampling.max_tokens is not None else self.n_ctx
            self._queue.pop(0)
            self._active[slot] = _Sequence(
                request,
                slot,
                sampler,
                pending=request.tokens[common:],
                position=common,
                cached=common,
                budget=budget,
                admitted=self._admissions,
            )

    def _compact(self) -> None:
        """(Lock held.) Move sequences so that those in flight hold slots 0..k-1, with no gaps.

        With a stream per sequence, llama.cpp puts sequences in one weight pass only as a run of
        consecutive ids: once some have ended (the end of a document, where no new work takes their
        slots), 0, 1, 3 and 5 made three passes a step where 0, 1, 2, 3 make one. A move is a stream
        copy (the cells keep their places, so the sequence decodes on exactly as before); the slot
        it leaves keeps its cells as a cached prefix, like any free slot.
        """
        k = len(self._active)
        movers = sorted(slot for slot in self._active if slot >= k)
        gaps = [slot for slot in range(k) if slot not in self._active]
        for source, target in zip(movers, gaps, strict=True):
            self._shelve(target, keep=0)
            llama_cpp.llama_memory_seq_rm(self._memory, target, -1, -1)
            llama_cpp.llama_memory_seq_cp(self._memory, source, target, -1, -1)
            self._slot_tokens[target] = list(self._slot_tokens[source])
            self._shared[target] = self._shared[source]
            sequence = self._active.pop(source)
            sequence.slot = target
            self._active[target] = sequence

    def _shelve(self, slot: int, keep: int) -> None:
        """(Lock held.) Before a free slot's cells past `keep` are given up, keep them on a shelf
        when they hold a long prefix that no other slot or shelf holds.

        A slot's cells are taken by whichever prompt comes next, so a prompt that returns after a
        while (translation's strict retry, whose few-shot prefix differs from the usual one)
        would read its whole prefix again each time: measured, three strict retries of one
        40-paragraph document decoded ~160 prefix tokens each. The shelf is another sequence id on
        the same cells (llama_memory_seq_cp shares them, nothing is copied); the cells stay
        occupied until the shelf is reused or the cache needs the room (_drop_idle_caches).
        """
        held = self._slot_tokens[slot]
        if not self._shelf_used or len(held) > MAX_SHELVED_TOKENS:
            return
        elsewhere = max([keep, self._held_elsewhere(slot)])
        if len(held) - elsewhere < WORTH_SHELVING:
            return
        if self._n_swa > 0 and llama_cpp.llama_memory_seq_pos_min(self._memory, slot) != 0:
            return  # a sliding window already dropped the start: no prefix of it can be continued
        shelf = self._shelf_for(proven=self._shared[slot] - elsewhere >= WORTH_SHELVING)
        if shelf is None:
            return
        llama_cpp.llama_memory_seq_rm(self._memory, shelf, -1, -1)
        self._copy_prefix(slot, shelf, len(held))
        self._slot_tokens[shelf] = list(held)
        self._shared[shelf] = self._shared[slot]
        self._shelf_used[shelf] = self._admissions

    def _held_elsewhere(self, slot: int) -> int:
        """(Lock held.) The longest start of `slot`'s cells that another slot or shelf also holds."""
        held = self._slot_tokens[slot]
        return max(common_prefix(tokens, held) for other, tokens in enumerate(self._slot_tokens) if other != slot)

    def _shelf_for(self, proven: bool) -> int | None:
        """(Lock held.) The shelf a prefix goes to: the least recently used of those whose prefix has
        not come back (a prompt's own text), or, for a prefix that has, of all; None: keep it off.

        With least-recently-used alone, a document's long segments pushed the strict retry's
        prefix off the shelves between two retries (measured: the next retry read 159 tokens
        again), though no prompt ever came back to theirs.
        """
        shelves = list(self._shelf_used)
        unproven = [s for s in shelves if self._shared[s] - self._held_elsewhere(s) < WORTH_SHELVING]
        pool = unproven or (shelves if proven else [])
        return min(pool, key=self._shelf_used.__getitem__) if pool else None

    def _copy_prefix(self, source: int, target: int, length: int) -> None:
        """(Lock held.) Give the empty sequence `target` the first `length` cells of `source`.

        In a unified cache the cells are shared, nothing is copied. With a stream per sequence,
        llama.cpp copies only whole streams (at the next decode), so the copy is trimmed after:
        the cells keep their places, as the batch-invariant decoder needs.
        """
        if not self.batch_invariant:
            llama_cpp.llama_memory_seq_cp(self._memory, source, target, 0, length)
            return
        llama_cpp.llama_memory_seq_cp(self._memory, source, target, -1, -1)
        llama_cpp.llama_memory_seq_rm(self._memory, target, length, -1)

    def _prefix_coming(self, tokens: list[int], cached: int) -> bool:
        """Whether a sequence still reading its prompt will soon hold much more of `tokens` than the cache.

        Prompts that arrive together (translation workers starting, clients with one system
        prompt) would each decode the prefix they share; waiting the one step it takes the first
        to read it lets the others take it by reference instead.
        """
        for sequence in self._active.values():
            if sequence.prefilling:
                shared = min(common_prefix(sequence.request.tokens, tokens), len(tokens) - 1)
                if shared >= cached + WORTH_WAITING_FOR:
                    return True
        return False

    def _longest_prefix(self, tokens: list[int]) -> tuple[int, int]:
        """The slot whose cache shares the longest usable prefix with `tokens`, and its length."""
        best, best_length = -1, 0
        for slot, held in enumerate(self._slot_tokens):
            # At least one token is decoded anew: its logits are where generation starts.
            length = min(common_prefix(held, tokens), len(tokens) - 1)
            if length > best_length and self._prefix_intact(slot, length):
                best, best_length = slot, length
        return best, best_length

    def _prefix_intact(self, slot: int, length: int) -> bool:
        """Whether the cells a continuation at `length` attends to are still there.

        A sliding-window layer keeps only the last n_swa positions of a sequence; a prefix
        whose window was already dropped (the sequence ran on far past it) cannot be continued.
        """
        if self._n_swa <= 0:
            return True
        lowest = llama_cpp.llama_memory_seq_pos_min(self._memory, slot)
        return 0 <= lowest <= max(0, length - self._n_swa)

    def _step(self) -> None:
        """One llama_decode for every active sequence, then a token for each that is due one."""
        rows: list[tuple[_Sequence, int]] = []  # (sequence, its logits row in the batch)
        n = 0
        generating = [s for s in self._active.values() if not s.prefilling]
        prefilling = [s for s in self._active.values() if s.prefilling]
        in_order = generating + prefilling
        if self.batch_invariant:
            # With a stream per sequence, llama.cpp puts streams in one weight pass (ubatch) only
            # as a run of increasing ids in batch order; in admission order a step of 8 made up
            # to 8 passes, and batching bought nothing.
            in_order.sort(key=lambda s: s.slot)
        consumed: list[tuple[_Sequence, int]] = []
        firsts: list[int] = []  # each sequence's first row: with a stream each, the first weight pass
        for sequence in in_order:
            room = self.n_batch - n
            if room <= 0:
                break
            take = min(room, len(sequence.pending))
            if self.batch_invariant:  # below flash attention's tiled kernel (batch_invariance.py)
                take = min(take, UNTILED_ROWS)
            if sequence.prefilling and take == len(sequence.pending) > 1:
                # The prompt's last token goes alone to a later step, as in token_loop.decode_prompt:
                # a repeated request, whose prompt the cache holds, decodes only that token again.
                take -= 1
            chunk = sequence.pending[:take]
            firsts.append(n)
            self._tokens_view[n : n + take] = chunk
            self._positions_view[n : n + take] = np.arange(sequence.position, sequence.position + take)
            self._logits_view[n : n + take] = 0
            for i in range(n, n + take):
                self._seq_ids[i][0] = sequence.slot
            if take == len(sequence.pending):
                self._logits_view[n + take - 1] = 1
                rows.append((sequence, n + take - 1))
            consumed.append((sequence, take))
            n += take
        if n == 0:
            return
        self._batch.n_tokens = self._fill_output_tiles(firsts, n)
        status = llama_cpp.llama_decode(self._context, self._batch)
        self._remove_fillers()
        if status == 1 and self._drop_idle_caches():
            self._batch.n_tokens = n
            status = llama_cpp.llama_decode(self._context, self._batch)
        if status == 2 or self._stop.is_set():
            with self._lock:
                self._stop_everything()
            return
        if status == 1 and len(self._active) > 1:
            self._give_way()
            return
        if status == 1:
            raise LlamadeskError(
                f"the batched context ({self.n_ctx} tokens) is full with {len(self._active)} sequences; "
                "use fewer sequences or shorter prompts"
            )
        if status != 0:
            raise LlamadeskError(f"llama_decode failed ({status})")
        for sequence, take in consumed:
            self._slot_tokens[sequence.slot] += sequence.pending[:take]
            sequence.position += take
            del sequence.pending[:take]
        now = time.perf_counter()
        for sequence, row in rows:
            try:
                self._advance(sequence, row, now)
            except Exception as error:  # the caller's on_piece failed: that sequence ends, the others go on
                self._finish(sequence, "stopped", error)

    def _fill_output_tiles(self, firsts: list[int], n: int) -> int:
        """Ask for logits rows the step does not need, up to whole output tiles; the batch's new size.

        A step that samples six or seven sequences costs more than one that samples eight on
        kernels that take rows four at a time (output_tiles.py). The extra rows are first taken
        from tokens already in the batch's first weight pass (a prompt's next token: its logits are
        computed and ignored), then, with a stream per sequence, from filler tokens on the free
        ids right after the run of sequences in flight, removed again after the step.
        """
        first_pass = firsts if self.batch_invariant else range(n)
        wanted = sum(1 for i in first_pass if self._logits_view[i])
        missing = padded_rows(wanted, self.output_tile) - wanted
        for i in first_pass:
            if missing == 0:
                return n
            if not self._logits_view[i]:
                self._logits_view[i] = 1
                missing -= 1
        if not self.batch_invariant or missing == 0 or len(firsts) < len(self._active):
            return n  # (a batch too small for every sequence in flight would leave a gap before the fillers)
        # _compact made the run 0..k-1, so ids k, k+1, ... extend it (a shelf's too: the filler
        # goes after what it holds and leaves with the step).
        for slot in range(len(self._active), len(self._slot_tokens)):
            if missing == 0 or n >= self.n_batch:
                break
            position = llama_cpp.llama_memory_seq_pos_max(self._memory, slot) + 1
            if position + 1 >= self.n_ctx:
                break  # no room in that stream: the run ends here
            self._tokens_view[n] = 0
            self._positions_view[n] = position
            self._logits_view[n] = 1
            self._seq_ids[n][0] = slot
            self._fillers.append((slot, position))
            n += 1
            missing -= 1
        return n

    def _remove_fillers(self) -> None:
        for slot, position in self._fillers:
            llama_cpp.llama_memory_seq_rm(self._memory, slot, position, -1)
        self._fillers.clear()

    def _give_way(self) -> None:
        """The sequences in flight together outgrew the shared cache (llama.cpp placed none of the
        batch): one gives way so that the others go on at the next step, and no new sequence starts
        until one has ended.

        The newest still reading its prompt goes back to the queue (it has shown nothing yet, so
        it starts again later, from whatever prefix is cached then). When every sequence is already
        generating, the one holding the most cells ends with reason "context", as if its own
        context were full: one reply cut short, not every reply failed.
        """
        prefilling = [s for s in self._active.values() if s.prefilling]
        if prefilling:
            victim = max(prefilling, key=lambda s: s.admitted)
        else:
            victim = max(self._active.values(), key=lambda s: s.position)
        llama_cpp.llama_memory_seq_rm(self._memory, victim.slot, -1, -1)
        self._slot_tokens[victim.slot] = []
        self._shared[victim.slot] = 0
        with self._lock:
            self._cache_full = True
            if victim.prefilling:
                victim.sampler.free()
                self._active.pop(victim.slot)
                self._queue.insert(0, victim.request)
                return
        self._finish(victim, "context")

    def _drop_idle_caches(self) -> bool:
        """Give up the prefixes kept in free slots (cells shared with an active slot stay); True if any."""
        dropped = False
        for slot, held in enumerate(self._slot_tokens):
            if slot not in self._active and held:
                llama_cpp.llama_memory_seq_rm(self._memory, slot, -1, -1)
                self._slot_tokens[slot] = []
                self._shared[slot] = 0
                dropped = True
        return dropped

    def _advance(self, sequence: _Sequence, row: int, now: float) -> None:
        """Sample `sequence`'s next token from batch row `row` and decide whether it goes on."""
        request = sequence.request
        if sequence.first_token_at is None:
            sequence.first_token_at = now
        token = sequence.sampler.sample(self._context, row)
        if not request.ignore_end and llama_cpp.llama_vocab_is_eog(self._vocab, token):
            sequence.ended_on_eog = True
            self._finish(sequence, "end")
            return
        sequence.generated += 1
        if request.sampling.logprobs:
            sequence.pending_logprob += token_logprob(self._context, row, self.n_vocab, token)
            sequence.pending_tokens += 1
        text = sequence.utf8.feed(self._text_of(token))
        if text:
            piece = (
                TextPiece(text, sequence.pending_logprob, sequence.pending_tokens)
                if request.sampling.logprobs
                else TextPiece(text)
            )
            sequence.pending_logprob, sequence.pending_tokens = 0.0, 0
            sequence.pieces.append(piece)
            if request.on_piece is not None and request.on_piece(piece):
                self._finish(sequence, "end")
                return
        if sequence.generated >= sequence.budget:
            self._finish(sequence, "length")
        elif sequence.position + 1 >= self.n_ctx:
            self._finish(sequence, "context")
        else:
            sequence.pending = [token]

    def _finish(self, sequence: _Sequence, reason: StopReason, error: BaseException | None = None) -> None:
        # Its outcome is made while it is still among the active ones: a failure on the way
        # reaches its caller through _run's handler, where a sequence already taken out of
        # _active was in neither list and its caller waited forever (a translation's worker
        # held `translate` until the test's 600 s timeout).
        sequence.sampler.free()
        sequence.utf8.flush()
        stats = _stats(
            sequence.request,
            sequence.cached,
            sequence.generated,
            sequence.first_token_at,
            reason,
            sequence.position,
            self.n_ctx,
            sequence.ended_on_eog,
        )
        with self._lock:
            self._active.pop(sequence.slot, None)
            self._cache_full = False  # its cells are free for a sequence that gave way
            self._lock.notify_all()
        sequence.request.handle.set_outcome(SequenceResult(sequence.pieces, stats), error)


def _stats(
    request: _Request,
    cached: int,
    generated: int,
    first_token_at: float | None,
    reason: StopReason,
    context_tokens: int,
    n_ctx: int,
    ended_on_eog: bool,
) -> GenerationStats:
    finished = time.perf_counter()
    first = first_token_at if first_token_at is not None else finished
    prompt_time = max(first - request.submitted, 1e-9)
    gen_time = finished - first
    return GenerationStats(
        prompt_tokens=len(request.tokens),
        cached_prompt_tokens=cached,
        generated_tokens=generated,
        time_to_first_token=first - request.submitted,
        prompt_tokens_per_second=(len(request.tokens) - cached) / prompt_time,
        generated_tokens_per_second=generation_rate(generated, ended_on_eog, gen_time),
        context_tokens=context_tokens,
        n_ctx=n_ctx,
        stop_reason=reason,
    )
