"""Choosing each next token for one sequence: a llama.cpp sampler chain, or argmax when greedy.

The chain is the one llama-cpp-python builds for `Llama.generate` (penalties, grammar, top-k,
typical, top-p, min-p, temperature, a seeded draw), so a sequence decoded here picks the same
tokens as the engine's single-stream path for the same seed. Greedy decoding without a grammar
skips the chain: llama.cpp's sampler copies the whole vocabulary into a candidate array per
token (262k entries for Gemma 3), where an argmax over the logits row reads it once.
"""

from __future__ import annotations

import ctypes
import math

import llama_cpp
import numpy as np

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.engine.logits_row import logits_row
from llamadesk.app.engine.penalized_greedy import PenalizedGreedy
from llamadesk.app.engine.types import Sampling

DEFAULT_SEED = 0xFFFFFFFF  # llama.cpp's "pick a random seed"
PENALTY_LAST_N = 64  # llama-cpp-python's last_n_tokens_size default


def is_plain_greedy(sampling: Sampling) -> bool:
    """Whether the next token is simply the most likely one (no grammar to respect)."""
    return sampling.temperature == 0.0 and sampling.grammar is None and sampling.repeat_penalty == 1.0


def _can_cut_before_penalties(sampling: Sampling) -> bool:
    """Whether a top-k cut before the penalties leaves the chain's outcome unchanged.

    Only a penalty that lowers logits (>= 1) and a top-k that follows it: a grammar between them
    may reject every token of the cut, and a temperature <= 0 skips top-k altogether.
    """
    return (
        sampling.repeat_penalty >= 1.0 and sampling.top_k > 0 and sampling.grammar is None and sampling.temperature > 0
    )


class TokenSampler:
    """The sampling state of one sequence; free() it (or use `with`) when the sequence ends."""

    def __init__(self, vocab: llama_cpp.llama_vocab_p, n_vocab: int, sampling: Sampling):
        self._n_vocab = n_vocab
        self._chain: llama_cpp.llama_sampler_p | None = None
        self._penalized: PenalizedGreedy | None = None
        if is_plain_greedy(sampling):
            return
        if sampling.temperature == 0.0 and sampling.grammar is None:
            # Penalties then greedy, without the chain's copy of the whole vocabulary per token.
            self._penalized = PenalizedGreedy(sampling.repeat_penalty, PENALTY_LAST_N)
            return
        params = llama_cpp.llama_sampler_chain_default_params()
        params.no_perf = True
        chain = llama_cpp.llama_sampler_chain_init(params)
        self._chain = chain

        def add(sampler: llama_cpp.llama_sampler_p) -> None:
            llama_cpp.llama_sampler_chain_add(chain, sampler)  # the chain owns and frees it

        if _can_cut_before_penalties(sampling):
            # The penalties sampler looks every candidate up in its table of recent tokens: 262k
            # lookups per token for Gemma 3, ~5% of a chat reply's time. It only lowers logits of
            # at most PENALTY_LAST_N tokens, so the top_k after it are among the top
            # (top_k + PENALTY_LAST_N) before it: cutting there first changes no outcome.
            add(llama_cpp.llama_sampler_init_top_k(sampling.top_k + PENALTY_LAST_N))
        add(llama_cpp.llama_sampler_init_penalties(n_vocab, PENALTY_LAST_N, sampling.repeat_penalty, 0.0, 0.0))
        if sampling.grammar is not None:
            grammar = llama_cpp.llama_sampler_init_grammar(vocab, sampling.grammar.encode("utf-8"), b"root")
            if not grammar:
                self.free()
                raise BadInputError("the output grammar is not valid GBNF (llama.cpp could not parse it)")
            add(grammar)
        seed = sampling.seed if sampling.seed is not None else DEFAULT_SEED
        if sampling.temperature < 0.0:
            add(llama_cpp.llama_sampler_init_dist(seed))
        elif sampling.temperature == 0.0:
            add(llama_cpp.llama_sampler_init_greedy())
        else:
            add(llama_cpp.llama_sampler_init_top_k(sampling.top_k))
            add(llama_cpp.llama_sampler_init_typical(1.0, 1))
            add(llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1))
            add(llama_cpp.llama_sampler_init_min_p(sampling.min_p, 1))
            add(llama_cpp.llama_sampler_init_temp(sampling.temperature))
            add(llama_cpp.llama_sampler_init_dist(seed))

    def sample(self, context: llama_cpp.llama_context_p, index: int) -> int:
        """The next token from the logits of batch position `index` (accepted into the chain's state)."""
        if self._chain is not None:
            return llama_cpp.llama_sampler_sample(self._chain, context, index)
        row = logits_row(context, index, self._n_vocab)
        if self._penalized is not None:
            return self._penalized.pick(row)
        return int(row.argmax())

    def free(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None

    def __enter__(self) -> TokenSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.free()


def token_logprob(context: llama_cpp.llama_context_p, index: int, n_vocab: int, token: int) -> float:
    """log p(token) under the model's raw distribution at batch position `index` (a log-softmax).

    In float32, where llama.cpp's logits already are: a float64 copy made this 6 ms a token for
    Gemma 3's 262k vocabulary (~10% of a translation's time, which asks it of every token for
    its confidence), float32 0.8 ms. numpy sums pairwise, so the float32 total is good to ~1e-6,
    far below what a confidence threshold can tell apart.
    """
    logits = logits_row(context, index, n_vocab)
    peak = logits.max()
    shifted = logits - peak
    np.exp(shifted, out=shifted)
    return float(logits[token] - peak) - math.log(float(shifted.sum()))


class TokenText:
    """A token's bytes, as llama.cpp writes its piece (special tokens as empty, like detokenize).

    Each token's piece is asked of llama.cpp once and remembered (at most one entry per token of
    the vocabulary): a reply asks for the same few thousand tokens again and again, once per token
    generated, and a dictionary look-up costs a fraction of the ctypes call and the copy.
    """

    def __init__(self, vocab: llama_cpp.llama_vocab_p):
        self._vocab = vocab
        self._buffer = ctypes.create_string_buffer(256)
        self._pieces: dict[int, bytes] = {}

    def __call__(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self._piece(token)
        return piece

    def _piece(self, token: int) -> bytes:
        n = llama_cpp.llama_token_to_piece(self._vocab, token, self._buffer, len(self._buffer), 0, False)
        if n < 0:  # a piece longer than the buffer: llama.cpp says how long
            self._buffer = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, self._buffer, len(self._buffer), 0, False)
        return self._buffer.raw[:n]
