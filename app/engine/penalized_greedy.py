"""Greedy decoding with a repeat penalty, picked from the logits row as llama.cpp's chain would pick it.

`--temperature 0` keeps the chat's default repeat penalty (1.1), so its tokens came from
llama.cpp's chain of penalties then greedy. `llama_sampler_sample` first copies every logit into
a candidate array ({id, logit, p}: 12 bytes a token, 590 KB for SmolLM2's 49k, 3 MB for Gemma
3's 262k) and then scans it: about 300 us of the time between two tokens on the development
machine, where an argmax of the row takes under 100 (bench/RESULTS.md "chat path"). The penalty
changes only the logits of the tokens generated last (at most PENALTY_LAST_N of them), so the
pick needs the row's argmax and those few entries.

The arithmetic is llama.cpp's (llama-sampler.cpp, penalties then greedy), in float32 as there:
a penalized logit that is positive is divided by the penalty, one that is not is multiplied by
it, and the pick is the first token of the highest logit in vocabulary order (numpy's argmax
and llama.cpp's strict `>` scan agree on ties; on NaN they differ, see `first_highest`). The
tokens remembered are the last PENALTY_LAST_N picked, as the penalty sampler's ring buffer
keeps them.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

# A double at or past this rounds to infinity as a float32: float32's largest value plus half of its
# last step (a tie rounds to even, which is infinity there).
FLOAT32_OVERFLOW = 2.0**128 - 2.0**103


def first_highest(row: np.ndarray) -> int:
    """The token llama.cpp's greedy sampler picks from `row`: the first highest, NaN never higher.

    numpy's argmax takes a NaN for the highest; llama.cpp's scan (`row[i] > row[selected]`)
    never moves to one, and never moves off one in the first place. A penalty of 0 makes NaN
    of an -inf logit (-inf * 0).
    """
    best = int(row.argmax())
    if not np.isnan(row[best]):
        return best
    if np.isnan(row[0]):
        return 0
    return int(np.where(np.isnan(row), -np.inf, row).argmax())


class PenalizedGreedy:
    """The greedy pick under a repeat penalty, for one sequence; remembers what it picked."""

    def __init__(self, penalty: float, last_n: int):
        self._penalty = np.float32(penalty)
        self._last_n = last_n
        self._recent: deque[int] = deque()
        self._counts: dict[int, int] = {}

    def pick(self, row: np.ndarray) -> int:
        """The next token from `row`, the float32 logits of one position (left as it was)."""
        best = first_highest(row)
        counts = self._counts
        # A penalty >= 1 only lowers logits: a best token that was not generated lately stays best.
        if counts and (best in counts or self._penalty < 1):
            best = self._penalized_argmax(row)
        self._remember(best)
        return best

    def _penalized_argmax(self, row: np.ndarray) -> int:
        penalty = float(self._penalty)
        if penalty <= 0.0:  # 0 (Ollama allows it) divides by zero: numpy's IEEE arithmetic, as in C
            return self._penalized_argmax_ieee(row)
        # Each of the few penalized entries changed in place in Python floats, the row scanned once
        # and put back. Right after a decode numpy's machinery is out of the CPU's caches, and its
        # gather, where and scatter cost more than these few dozen float operations (about 50 us of
        # the ~170 between two tokens of a chat reply, bench/RESULTS.md "chat path"). A product or
        # quotient of two float32 values computed in double precision and rounded once to float32
        # is the correctly rounded float32 result, the one llama.cpp's float arithmetic gives.
        kept = [(token, row.item(token)) for token in self._counts]
        for token, logit in kept:
            value = logit * penalty if logit <= 0 else logit / penalty
            if abs(value) >= FLOAT32_OVERFLOW:  # infinite as C's float arithmetic makes it, without numpy's warning
                value = math.copysign(math.inf, value)
            row[token] = value
        try:
            return first_highest(row)
        finally:
            for token, logit in kept:
                row[token] = logit

    def _penalized_argmax_ieee(self, row: np.ndarray) -> int:
        ids = np.fromiter(self._counts, dtype=np.intp, count=len(self._counts))
        kept = row[ids]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # inf, NaN, as in C
            penalized = np.where(kept <= 0, kept * self._penalty, kept / self._penalty)
        # Written into the row and put back, rather than argmax over a copy of the whole row:
        # the row is llama.cpp's output buffer, which nothing reads until this returns.
        row[ids] = penalized
        try:
            return first_highest(row)
        finally:
            row[ids] = kept

    def _remember(self, token: int) -> None:
        if self._last_n <= 0:
            return
        counts, recent = self._counts, self._recent
        counts[token] = counts.get(token, 0) + 1
        if len(recent) >= self._last_n:
            old = recent.popleft()
            if counts[old] == 1:
                del counts[old]
            else:
                counts[old] -= 1
        recent.append(token)
