"""Prompt-lookup decoding: drafts from the context, and greedy output byte-identical to plain decoding."""

from __future__ import annotations

import numpy as np
import pytest

from llamadesk.app.engine.prompt_lookup import find_draft
from llamadesk.app.engine.types import LoadSettings, Sampling, TextPiece
from tests.conftest import PINNED_LOAD

QUOTED = (
    "The quick brown fox, named Rufus Wainwright-Oduya, jumped over 3 lazy dogs at 14:35 on 2024-03-17 "
    "near 221B Baker Street."
)


def test_a_draft_is_what_followed_the_latest_match_of_the_last_tokens():
    history = np.array([5, 6, 7, 8, 9, 1, 6, 7, 8, 2, 3, 6, 7], dtype=np.int32)
    assert find_draft(history, 3) == [8, 2, 3]  # "6 7" last seen before "8 2 3"
    assert find_draft(np.array([1, 2, 3, 4], dtype=np.int32)) == []  # no earlier match
    assert find_draft(np.array([4, 1, 2, 9, 1, 2], dtype=np.int32), 8) == [9, 1, 2]


def reply(engine, sampling: Sampling, **kind) -> str:
    events = (
        engine.stream_chat(kind["messages"], sampling)
        if "messages" in kind
        else engine.stream_completion(kind["prompt"], sampling)
    )
    return "".join(e.text for e in events if isinstance(e, TextPiece))


@pytest.fixture(scope="module")
def gemma_engine(gemma_path):
    from llamadesk.app.engine.llama_engine import Engine

    with Engine.load(gemma_path, LoadSettings(n_ctx=1024, **PINNED_LOAD)) as engine:
        yield engine


def test_a_quoting_chat_reply_is_the_same_with_lookup_and_mostly_drafted(smollm2_engine):
    messages = [{"role": "user", "content": f"Repeat this sentence exactly, then say done:\n{QUOTED}"}]
    plain = reply(smollm2_engine, Sampling(temperature=0.0, max_tokens=48), messages=messages)
    lookup = smollm2_engine._token_loop.lookup
    before = lookup.accepted
    drafted = reply(smollm2_engine, Sampling(temperature=0.0, max_tokens=48, prompt_lookup=True), messages=messages)
    assert drafted == plain and QUOTED[:40] in plain
    assert lookup.accepted - before >= 20  # most of the quote came from drafts


def test_a_translation_prompt_is_the_same_with_lookup(gemma_engine):
    """A regression check on one prompt, not a guarantee for Gemma: its batched kernels round differently
    from single-token ones, and bench/prompt_lookup.py measures other translation prompts that differ."""
    prompt = f"English: {QUOTED}\nFrench:"
    plain = reply(gemma_engine, Sampling(temperature=0.0, max_tokens=48), prompt=prompt)
    drafted = reply(gemma_engine, Sampling(temperature=0.0, max_tokens=48, prompt_lookup=True), prompt=prompt)
    assert drafted == plain
