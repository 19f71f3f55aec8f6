"""Prompt-lookup decoding: guess the next tokens from the text so far, check the guess in one decode.

A reply that quotes its input (an edit, a translation that keeps names and numbers, code that is
corrected) repeats runs of tokens the context already holds. After each token, the last few tokens
are looked up earlier in the context; the tokens that followed them there are the draft. One
llama_decode then reads the token and the whole draft, with logits at every position: the
draft's tokens are kept for as long as each is the argmax after the one before, which is exactly
what greedy decoding would have picked, and the first position that disagrees gives the next
token anyway. A good draft turns k decodes into one (the weights are read once for k tokens); a
wrong one costs a wider decode. Only greedy decoding can be checked this way.

The cells of a rejected draft are removed from the KV cache, so the context holds exactly the
tokens kept, as a plain decode would have left it.

How long a draft may be follows how the last ones fared (DraftLength). In a reply that quotes
little, two-token matches are everywhere (". The", "of the") and what followed them is rarely
what comes next: eight-token drafts from every match made a plain chat reply 0.55x as fast (1%
of drafts kept, bench/RESULTS.md "prompt lookup"). Each draft is now as long as this machine's
timings and the reply's share of right guesses make worth it, and after a check that cost more
time than it saved no guess is made for a while (longer after each such check in a row).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import llama_cpp
import numpy as np

from llamadesk.app.engine.context_cells import usable_context
from llamadesk.app.engine.logits_row import logits_row

NGRAM_SIZES = (3, 2)  # the longest match first: a 3-token match guesses better than a 2-token one
MAX_DRAFT = 8


def find_draft(history: np.ndarray, max_draft: int = MAX_DRAFT) -> list[int]:
    """The tokens that followed the latest earlier occurrence of `history`'s last n-gram ([] if none)."""
    length = len(history)
    for n in NGRAM_SIZES:
        if length <= n:
            continue
        tail = history[length - n :]
        starts = np.flatnonzero(history[: length - n] == tail[0])
        for k in range(1, n):
            starts = starts[history[starts + k] == tail[k]]
        if starts.size:
            start = int(starts[-1]) + n
            return history[start : start + max_draft].tolist()
    return []


MAX_PAUSE = 32  # tokens without guessing after many misses in a row; a quote that starts later waits this long


class DraftLength:
    """The longest draft to check next (0: do not guess this time), from how this reply's drafts fared.

    What a check of k tokens costs depends on the machine: on one core here, 1.9x a single decode
    for two tokens and 5.8x for nine, where a memory-bound machine reads the weights once for all
    of them and pays little more than for one. So checks are timed, not assumed, and the draft's
    length is the one that gives the most tokens per second: with p the chance that a guessed
    token is right given the one before it was (from this reply's checks), a draft of L tokens
    gives 1 + p + ... + p^L tokens for a check that costs a single decode and L times what a
    guessed token adds. A check that gave fewer tokens than single decodes would have in its time
    is a loss: after one, no guess is made for a while (longer after each loss in a row). Until
    both costs have been timed, drafts start at two tokens and double while they are kept whole.
    """

    def __init__(self, longest: int, first: int = 2):
        self.longest = longest
        self._length = min(first, longest)
        self._pause = 0  # tokens left without guessing
        self._losses = 0  # checks in a row that cost more time than they saved
        self._right = 0.0  # guessed tokens kept, recent checks weighing more
        self._wrong = 0.0  # guessed tokens rejected (at most one per check), the same way
        self._single: float | None = None  # seconds of a one-token decode, smoothed
        self._per_guess: float | None = None  # seconds a guessed token adds to a check, smoothed

    @property
    def limit(self) -> int:
        if self._pause:
            return 0
        if self._single is None or self._per_guess is None:
            return self._length
        p = (self._right + 1) / (self._right + self._wrong + 2)  # one right and one wrong assumed besides
        best, best_rate, expected = 1, 0.0, 1.0
        for length in range(1, self.longest + 1):
            expected += p**length
            rate = expected / (self._single + length * self._per_guess)
            if rate > best_rate:
                best, best_rate = length, rate
        return best

    def timed_single(self, seconds: float) -> None:
        """A decode of one token (no draft) took `seconds`."""
        self._single = seconds if self._single is None else 0.8 * self._single + 0.2 * seconds
        self._pause = max(0, self._pause - 1)

    def update(self, drafted: int, kept: int, seconds: float | None = None) -> None:
        """A check of `drafted` guessed tokens kept `kept` of them and took `seconds` (None: not timed)."""
        if drafted == 0:
            self._pause = max(0, self._pause - 1)
            return
        self._right = 0.8 * self._right + kept
        self._wrong = 0.8 * self._wrong + (kept < drafted)
        if seconds is not None and self._single is not None:
            paid_off = (kept + 1) * self._single >= seconds
            added = max(0.0, seconds - self._single) / drafted
            self._per_guess = added if self._per_guess is None else 0.8 * self._per_guess + 0.2 * added
        else:
            paid_off = kept == drafted
        self._length = min(self.longest, self._length * 2) if kept == drafted else max(1, kept + 1)
        if paid_off:
            self._losses = 0
        else:  # guess again only after a pause, longer after each loss in a row
            self._losses += 1
            self._pause = min(MAX_PAUSE, 2**self._losses)


class LookupDecoder:
    """Greedy decoding of one stream with prompt-lookup drafts (a Llama's context, sequence 0)."""

    def __init__(self, llama: llama_cpp.Llama, max_draft: int = MAX_DRAFT):
        self._llama = llama
        self._n_vocab = llama.n_vocab()
        self._max_draft = max_draft
        self._batch = llama_cpp.llama_batch_init(max_draft + 1, 0, 1)
        for i in range(max_draft + 1):
            self._batch.n_seq_id[i] = 1
            self._batch.seq_id[i][0] = 0
            self._batch.logits[i] = 1
        self.drafted = 0  # draft tokens proposed and kept, over this decoder's life (for benchmarks)
        self.accepted = 0

    def close(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None

    def _argmax(self, index: int) -> int:
        return int(logits_row(self._llama.ctx, index, self._n_vocab).argmax())

    def generate(self) -> Iterator[int]:
        """Greedy tokens after what the context holds (its last token's logits must be current)."""
        llama = self._llama
        batch = self._batch
        n_ctx = usable_context(llama)
        memory = llama_cpp.llama_get_memory(llama.ctx)
        length = DraftLength(self._max_draft)
        token = self._argmax(-1)
        # Where the context should end if the reader stops at the token just handed out: before
        # it, as a plain decode leaves it (a token is decoded only when the next one is asked
        # for). Kept draft tokens are decoded before they are handed out: those past a stop come off.
        end = llama.n_tokens
        try:
            while True:
                end = llama.n_tokens
                yield token
                position = llama.n_tokens
                llama.input_ids[position] = token
                room = max(0, n_ctx - position - 2)
                limit = min(length.limit, room)
                draft = find_draft(llama.input_ids[: position + 1], limit) if limit else []
                chunk = [token, *draft]
                for i, value in enumerate(chunk):
                    batch.token[i] = value
                    batch.pos[i] = position + i
                batch.n_tokens = len(chunk)
                started = time.perf_counter()
                status = llama_cpp.llama_decode(llama.ctx, batch)
                if status != 0:
                    raise RuntimeError(f"llama_decode returned {status}")
                seconds = time.perf_counter() - started
                kept = 0
                following = self._argmax(0)
                while kept < len(draft) and following == draft[kept]:
                    kept += 1
                    following = self._argmax(kept)
                llama.input_ids[position + 1 : position + 1 + kept] = draft[:kept]
                llama.n_tokens = position + 1 + kept
                if kept < len(draft):
                    llama_cpp.llama_memory_seq_rm(memory, 0, llama.n_tokens, -1)
                self.drafted += len(draft)
                self.accepted += kept
                if draft:
                    length.update(len(draft), kept, seconds)
                else:
                    length.timed_single(seconds)
                for i in range(kept):
                    end = position + 1 + i
                    yield draft[i]
                token = following
        finally:
            if llama.n_tokens > end:
                llama_cpp.llama_memory_seq_rm(memory, 0, end, -1)
                llama.n_tokens = end
