"""Prompt-lookup decoding: guess the next tokens from the text so far, check the guess in one decode.

A reply that quotes its input (an edit, a translation that keeps names and numbers, code that is
corrected) repeats runs of tokens the context already holds. After each token, the last few tokens
are looked up earlier in the context; the tokens that followed them there are the draft. One
llama_decode then reads the token and the whole draft, with logits at every position: the
draft's tokens are kept for as long as each is the argmax after the one before, which is exactly
what greedy decoding would have picked, and the first position that disagrees gives the next
token anyway. A good draft turns k decodes into one (the weights are read once for k tokens); a
wrong one costs a slightly wider decode. Only greedy decoding can be checked this way.

The cells of a rejected draft are removed from the KV cache, so the context holds exactly the
tokens kept, as a plain decode would have left it.
"""

from __future__ import annotations

from collections.abc import Iterator

import llama_cpp
import numpy as np

from llamadesk.app.engine.context_cells import usable_context

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
        row = llama_cpp.llama_get_logits_ith(self._llama.ctx, index)
        return int(np.ctypeslib.as_array(row, shape=(self._n_vocab,)).argmax())

    def generate(self) -> Iterator[int]:
        """Greedy tokens after what the context holds (its last token's logits must be current)."""
        llama = self._llama
        batch = self._batch
        n_ctx = usable_context(llama)
        memory = llama_cpp.llama_get_memory(llama.ctx)
        token = self._argmax(-1)
        while True:
            yield token
            position = llama.n_tokens
            llama.input_ids[position] = token
            room = max(0, n_ctx - position - 2)
            draft = find_draft(llama.input_ids[: position + 1], min(self._max_draft, room))
            chunk = [token, *draft]
            for i, value in enumerate(chunk):
                batch.token[i] = value
                batch.pos[i] = position + i
            batch.n_tokens = len(chunk)
            status = llama_cpp.llama_decode(llama.ctx, batch)
            if status != 0:
                raise RuntimeError(f"llama_decode returned {status}")
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
            yield from draft[:kept]
            token = following
