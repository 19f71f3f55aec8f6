"""The single-stream token loop: decode the prompt, then one token per llama_decode, with little Python between.

llama-cpp-python's `Llama.generate` does per token what a chat reply does not need: it refills
its batch through a Python loop, asks llama.cpp to drop cache cells past the end (there are none),
and samples through a chain that copies the whole vocabulary into a candidate array even when
the choice is a plain argmax (262k entries per token for Gemma 3). Here a one-token batch is
filled in place, greedy picks are an argmax over the logits row, and other sampling goes through
the same llama.cpp chain llama-cpp-python builds (token_sampler.py), so the tokens are the same.

The Llama object's own record of what the context holds (`input_ids`, `n_tokens`) is kept up to
date, so its prefix reuse and anything else reading it see what `generate` would have left.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import llama_cpp
import numpy as np

from llamadesk.app.engine.prompt_lookup import LookupDecoder
from llamadesk.app.engine.token_sampler import TokenSampler, is_plain_greedy
from llamadesk.app.engine.types import Sampling


def reusable_prefix(llama: llama_cpp.Llama, prompt: Sequence[int]) -> int:
    """How many leading prompt tokens the context already holds (at least one is always decoded again)."""
    held = llama.input_ids[: llama.n_tokens]
    n = min(len(held), len(prompt) - 1)
    if n <= 0:
        return 0
    different = np.flatnonzero(held[:n] != np.asarray(prompt[:n], dtype=held.dtype))
    return int(different[0]) if different.size else n


def decode_prompt(llama: llama_cpp.Llama, prompt: Sequence[int]) -> None:
    """Decode `prompt` after the prefix of it the context already holds; its last token's logits are then ready.

    The last token is always decoded on its own. llama.cpp's kernels round a token decoded in a
    batch differently from one decoded alone (other matrix and attention paths), and a request
    whose prompt the cache already holds decodes only that last token again: decoding it alone
    the first time too gives the first reply token the same logits both times, so the same
    request with the same seed gets the same reply whatever the cache held.
    """
    cached = reusable_prefix(llama, prompt)
    if cached == 0 or not llama._ctx.kv_cache_seq_rm(-1, cached, -1):
        # Nothing to keep, or a cache that cannot drop a tail (a sliding window already moved on).
        llama.reset()
        llama._ctx.kv_cache_clear()
        cached = 0
    llama.n_tokens = cached
    rest = list(prompt[cached:])
    if len(rest) > 1:
        llama.eval(rest[:-1])
    llama.eval(rest[-1:])


class TokenLoop:
    """One model's single-stream decoding; create once per Llama and reuse for every reply."""

    def __init__(self, llama: llama_cpp.Llama):
        self._llama = llama
        self._vocab = llama_cpp.llama_model_get_vocab(llama._model.model)
        self._n_vocab = llama.n_vocab()
        self._batch = llama_cpp.llama_batch_init(1, 0, 1)
        self._batch.n_tokens = 1
        self._batch.n_seq_id[0] = 1
        self._batch.seq_id[0][0] = 0
        self._batch.logits[0] = 1
        self.lookup = LookupDecoder(llama)

    def close(self) -> None:
        self.lookup.close()
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None

    def generate(self, prompt: list[int], sampling: Sampling) -> Iterator[int]:
        """Tokens after `prompt`, reusing the prefix the context holds; close the iterator to stop.

        Raises RuntimeError when llama_decode fails or is aborted (the engine's stop flag), as
        llama-cpp-python does.
        """
        llama = self._llama
        decode_prompt(llama, prompt)
        if sampling.prompt_lookup and is_plain_greedy(sampling) and not sampling.logprobs:
            yield from self.lookup.generate()
            return
        context = llama.ctx
        batch = self._batch
        with TokenSampler(self._vocab, self._n_vocab, sampling) as sampler:
            while True:
                token = sampler.sample(context, -1)
                yield token
                position = llama.n_tokens
                batch.token[0] = token
                batch.pos[0] = position
                status = llama_cpp.llama_decode(context, batch)
                if status != 0:
                    raise RuntimeError(f"llama_decode returned {status}")
                llama.input_ids[position] = token
                llama.n_tokens = position + 1
