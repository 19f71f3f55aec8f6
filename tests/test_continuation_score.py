"""Engine.continuation_logprobs: how likely a model finds a given text after a prompt, on real llama.cpp."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.engine.llama_engine import Engine
from llamadesk.app.engine.types import LoadSettings, Sampling
from tests.conftest import PINNED_LOAD

PROMPT = "The capital of France is"
LIKELY = " Paris, and the capital of Germany is Berlin."


def log_softmax(row: np.ndarray) -> np.ndarray:
    row = row.astype(np.float64)
    return row - row.max() - math.log(np.exp(row - row.max()).sum())


def test_each_token_scores_as_the_models_own_next_token_distribution_says(smollm2_engine):
    prompt = smollm2_engine.tokenize(PROMPT, add_bos=True)
    continuation = smollm2_engine.tokenize(LIKELY, add_bos=False)
    scores = smollm2_engine.continuation_logprobs(prompt, continuation)
    assert len(scores) == len(continuation) and all(s <= 0 for s in scores)
    # The reference: logits after every prefix, decoded one token at a time.
    rows = smollm2_engine.position_logits(prompt + continuation)
    expected = [log_softmax(rows[len(prompt) - 1 + i])[token] for i, token in enumerate(continuation)]
    # One batch against one token at a time: other kernel paths, a little other rounding.
    assert np.allclose(scores, expected, atol=0.25), (scores, expected)


def test_a_likely_text_outscores_an_unlikely_one_and_a_second_call_reuses_the_prompt(smollm2_engine):
    prompt = smollm2_engine.tokenize(PROMPT, add_bos=True)
    likely = smollm2_engine.tokenize(" Paris.", add_bos=False)
    unlikely = smollm2_engine.tokenize(" a purple banana.", add_bos=False)
    first = smollm2_engine.continuation_logprobs(prompt, likely)
    assert smollm2_engine.cached_prefix(prompt + likely) == len(prompt) + len(likely) - 1
    worse = smollm2_engine.continuation_logprobs(prompt, unlikely)
    assert sum(first) / len(first) > sum(worse) / len(worse) + 1.0
    again = smollm2_engine.continuation_logprobs(prompt, likely)
    assert np.allclose(first, again, atol=0.05)
    # The engine is left consistent: a reply after scoring still runs and reuses the prompt.
    events = list(smollm2_engine.stream_tokens(prompt, Sampling(temperature=0.0, max_tokens=3)))
    assert events[-1].stats.cached_prompt_tokens == len(prompt) and events[-1].stats.generated_tokens == 3


def test_a_text_longer_than_a_batch_is_scored_in_pieces(smollm2_path):
    with Engine.load(smollm2_path, LoadSettings(n_ctx=512, **{**PINNED_LOAD, "n_batch": 8})) as small_batches:
        prompt = small_batches.tokenize(PROMPT, add_bos=True)
        continuation = small_batches.tokenize(LIKELY * 3, add_bos=False)
        assert len(continuation) > 16
        pieces = small_batches.continuation_logprobs(prompt, continuation)
    with Engine.load(smollm2_path, LoadSettings(n_ctx=512, **PINNED_LOAD)) as whole:
        at_once = whole.continuation_logprobs(prompt, continuation)
    assert len(pieces) == len(at_once) == len(continuation)
    assert np.allclose(pieces, at_once, atol=0.25)


def test_empty_or_oversized_input_is_refused_with_one_line(smollm2_engine):
    prompt = smollm2_engine.tokenize(PROMPT, add_bos=True)
    with pytest.raises(BadInputError, match="at least one token"):
        smollm2_engine.continuation_logprobs(prompt, [])
    with pytest.raises(BadInputError, match="at least one token"):
        smollm2_engine.continuation_logprobs([], prompt)
    with pytest.raises(BadInputError, match="context holds"):
        smollm2_engine.continuation_logprobs(prompt, prompt * 2000)
