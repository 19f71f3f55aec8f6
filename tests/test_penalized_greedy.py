"""The greedy pick under a repeat penalty picks what llama.cpp's chain of penalties then greedy picks."""

from __future__ import annotations

import ctypes

import llama_cpp
import numpy as np
import pytest

from llamadesk.app.engine.penalized_greedy import PenalizedGreedy

# numpy's overflow warnings would reach the user's terminal: none may come from a pick.
pytestmark = pytest.mark.filterwarnings("error")


class LlamaCppChain:
    """llama.cpp's own penalties + greedy samplers, applied to a row without a model or context."""

    def __init__(self, n_vocab: int, penalty: float, last_n: int):
        self.chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        llama_cpp.llama_sampler_chain_add(
            self.chain, llama_cpp.llama_sampler_init_penalties(n_vocab, last_n, penalty, 0.0, 0.0)
        )
        llama_cpp.llama_sampler_chain_add(self.chain, llama_cpp.llama_sampler_init_greedy())
        self.candidates = (llama_cpp.llama_token_data * n_vocab)()

    def pick(self, row: np.ndarray) -> int:
        for token, logit in enumerate(row.tolist()):
            self.candidates[token] = llama_cpp.llama_token_data(token, logit, 0.0)
        array = llama_cpp.llama_token_data_array(self.candidates, len(row), -1, False)
        llama_cpp.llama_sampler_apply(self.chain, ctypes.byref(array))
        token = self.candidates[array.selected].id
        llama_cpp.llama_sampler_accept(self.chain, token)
        return token

    def free(self) -> None:
        llama_cpp.llama_sampler_free(self.chain)


def rows(rng: np.random.Generator, n_vocab: int, count: int):
    """Logit rows with what the arithmetic can trip on: ties, zeros of both signs, negatives, inf, NaN."""
    for _ in range(count):
        row = rng.normal(0.0, 3.0, n_vocab).astype(np.float32)
        kind = rng.integers(7)
        if kind == 0:  # a few tied maxima
            row[rng.choice(n_vocab, 3, replace=False)] = row.max() + 1
        elif kind == 1:  # coarse values: many ties after the penalty
            row = np.round(row).astype(np.float32)
        elif kind == 2:
            row[rng.choice(n_vocab, 4, replace=False)] = [0.0, -0.0, np.inf, -np.inf]
        elif kind == 3:  # everything negative: the penalty multiplies
            row = -np.abs(row)
        elif kind == 4:  # a broken model's NaN, sometimes in first place (llama.cpp then never moves)
            row[rng.choice([0, rng.integers(n_vocab)])] = np.nan
        elif kind == 5:  # near float32's limits: a penalty can overflow them to infinity, or not quite
            big = np.float32(np.finfo(np.float32).max)
            row[rng.choice(n_vocab, 6, replace=False)] = [big, -big, big * 0.95, -big * 0.95, big * 0.5, -big * 0.6]
        yield row


@pytest.mark.parametrize("penalty", [0.0, 0.5, 1.1, 1.3, 2.0, 5.0])
@pytest.mark.parametrize("last_n", [64, 3])
def test_each_pick_is_llama_cpps(penalty, last_n):
    rng = np.random.default_rng(int(penalty * 10) + last_n)
    n_vocab = 50  # small, so the same tokens come back and are penalized
    ours = PenalizedGreedy(penalty, last_n)
    theirs = LlamaCppChain(n_vocab, penalty, last_n)
    try:
        picks = []
        for row in rows(rng, n_vocab, 300):
            before = row.copy()
            picks.append(ours.pick(row))
            assert np.array_equal(row, before, equal_nan=True)  # the row is put back as it was
            assert picks[-1] == theirs.pick(row)
        assert picks != [int(r.argmax()) for r in rows(np.random.default_rng(int(penalty * 10) + last_n), n_vocab, 300)]
    finally:
        theirs.free()


@pytest.mark.parametrize("penalty", [0.0, 0.5])
def test_a_penalty_that_overflows_float32_makes_infinity_as_llama_cpp_does(penalty):
    """Token 1 was picked, then comes back at 3/4 of float32's largest value: divided by 0.5 it is
    infinite in C and beats token 0 at the largest finite value (a value kept finite would tie,
    and the tie goes to token 0)."""
    big = np.finfo(np.float32).max
    ours, theirs = PenalizedGreedy(penalty, 64), LlamaCppChain(2, penalty, 64)
    try:
        for row in ([0.0, 1.0], [big, big * np.float32(0.75)], [-big, -big * np.float32(0.75)]):
            row = np.array(row, dtype=np.float32)
            assert ours.pick(row) == theirs.pick(row)
    finally:
        theirs.free()


def test_a_penalty_turns_a_repeated_best_token_away():
    greedy = PenalizedGreedy(1.5, 64)
    row = np.array([1.0, 3.0, 2.5], dtype=np.float32)
    assert greedy.pick(row) == 1  # nothing generated yet: the plain argmax
    assert greedy.pick(row) == 2  # 3.0 / 1.5 = 2.0 < 2.5
    assert greedy.pick(row) == 1  # both penalized now: 2.0 against 2.5 / 1.5


@pytest.mark.parametrize(("last_n", "expected"), [(2, 0), (3, 3)])
def test_only_the_last_n_picks_are_penalized(last_n, expected):
    greedy = PenalizedGreedy(2.0, last_n)
    for token in (0, 1, 2):  # rows whose best is that token, far ahead of the others
        assert greedy.pick(np.eye(4, dtype=np.float32)[token] * 100) == token
    # Token 0 is best unless penalized (3.0 / 2 = 1.5 < 2.0): it is, only while among the last picks.
    assert greedy.pick(np.array([3.0, 0.0, 0.0, 2.0], dtype=np.float32)) == expected
