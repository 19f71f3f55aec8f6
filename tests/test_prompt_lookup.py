"""Prompt-lookup decoding: drafts from the context, and greedy output byte-identical to plain decoding."""

from __future__ import annotations

import numpy as np
import pytest

from llamadesk.app.engine.prompt_lookup import MAX_PAUSE, DraftLength, find_draft
from llamadesk.app.engine.types import GenerationDone, LoadSettings, Sampling, TextPiece
from tests.conftest import PINNED_FLAGS, PINNED_LOAD, run_cli

QUOTED = (
    "The quick brown fox, named Rufus Wainwright-Oduya, jumped over 3 lazy dogs at 14:35 on 2024-03-17 "
    "near 221B Baker Street."
)


def test_a_draft_is_what_followed_the_latest_match_of_the_last_tokens():
    history = np.array([5, 6, 7, 8, 9, 1, 6, 7, 8, 2, 3, 6, 7], dtype=np.int32)
    assert find_draft(history, 3) == [8, 2, 3]  # "6 7" last seen before "8 2 3"
    assert find_draft(np.array([1, 2, 3, 4], dtype=np.int32)) == []  # no earlier match
    assert find_draft(np.array([4, 1, 2, 9, 1, 2], dtype=np.int32), 8) == [9, 1, 2]


def test_untimed_drafts_start_short_and_double_while_they_are_kept_whole():
    length = DraftLength(8)
    assert length.limit == 2  # a first guess is short
    length.update(2, 2)
    assert length.limit == 4
    length.update(4, 4)
    length.update(8, 8)
    assert length.limit == 8  # never past the longest
    length.update(0, 0)  # no match this time: nothing learnt
    assert length.limit == 8


def test_a_check_that_costs_more_than_it_gives_pauses_guessing_longer_each_time():
    length = DraftLength(8)
    pauses = []
    for _ in range(7):
        length.update(1, 0)  # untimed: a draft not kept whole is a loss
        pause = 0
        while length.limit == 0:  # the decoder asks for no draft and decodes one token
            pause += 1
            length.update(0, 0)
        pauses.append(pause)
        assert length.limit == 1  # guessing again, one more than what was right
    assert pauses == [2, 4, 8, 16, 32, MAX_PAUSE, MAX_PAUSE]
    length.update(1, 1)  # a check that paid off ends the run of losses: the next pause is short again
    length.update(1, 0)
    length.timed_single(0.01)  # single decodes count down the pause too
    assert length.limit == 0
    length.update(0, 0)
    assert length.limit == 1


def timed(single: float, per_guess: float, right: int) -> DraftLength:
    """A DraftLength that has timed single decodes and `right` checks of 2 guesses kept whole."""
    length = DraftLength(8)
    length.timed_single(single)
    for _ in range(right):
        length.update(2, 2, single + 2 * per_guess)
    return length


def test_the_draft_is_as_long_as_the_machine_makes_it_worth():
    # Memory-bound (a guessed token adds a tenth of a decode): quotes get the longest drafts.
    assert timed(0.010, 0.001, right=6).limit == 8
    # Compute-bound (this 2-core host, where two tokens cost 1.9 decodes): one guess at a time.
    assert timed(0.010, 0.009, right=6).limit == 1
    # The same machine after misses: a draft's tokens are less likely right, and drafts shorten.
    fast = timed(0.010, 0.001, right=2)
    fast.update(8, 0, 0.018)  # wrong from its first token: the check gave 1 token for 1.8 decodes' time
    assert fast.limit == 0  # a loss: a pause
    fast.timed_single(0.010)
    fast.timed_single(0.010)
    assert 1 <= fast.limit < 8


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


def test_a_reply_that_quotes_nothing_guesses_little_and_is_the_same(smollm2_engine):
    """Two-token matches are everywhere in prose; eight-token drafts from them made such a reply 0.55x
    as fast. Guesses now start short and pause after misses."""
    messages = [{"role": "user", "content": "Why is the sky blue? Answer in a few sentences."}]
    plain = reply(smollm2_engine, Sampling(temperature=0.0, max_tokens=80), messages=messages)
    lookup = smollm2_engine._token_loop.lookup
    before = lookup.drafted
    drafted = reply(smollm2_engine, Sampling(temperature=0.0, max_tokens=80, prompt_lookup=True), messages=messages)
    assert drafted == plain and len(plain) > 200
    assert lookup.drafted - before <= 16, lookup.drafted - before  # tokens guessed over an 80-token reply


def test_a_reply_cut_inside_a_kept_draft_leaves_the_context_as_a_plain_reply_does(smollm2_engine):
    messages = [{"role": "user", "content": f"Repeat this sentence exactly, then say done:\n{QUOTED}"}]
    llama = smollm2_engine._llama
    held = {}
    for use_lookup in (False, True):
        for max_tokens in (17, 23, 30):  # stops that fall inside drafts as well as between them
            sampling = Sampling(temperature=0.0, max_tokens=max_tokens, prompt_lookup=use_lookup)
            done = [e for e in smollm2_engine.stream_chat(messages, sampling) if isinstance(e, GenerationDone)][0]
            held[use_lookup, max_tokens] = (done.stats.context_tokens, llama.input_ids[: llama.n_tokens].tolist())
    for max_tokens in (17, 23, 30):
        assert held[True, max_tokens] == held[False, max_tokens], max_tokens


def test_chat_prompt_lookup_on_the_command_line(smollm2_path):
    question = f"Repeat this sentence exactly: {QUOTED}"
    greedy = ("--temperature", "0", "--repeat-penalty", "1", "--max-tokens", "48")
    plain = run_cli("chat", "-m", str(smollm2_path), *PINNED_FLAGS, *greedy, question)
    lookup = run_cli("chat", "-m", str(smollm2_path), *PINNED_FLAGS, *greedy, "--prompt-lookup", question)
    assert plain.returncode == lookup.returncode == 0, lookup.stderr
    assert lookup.stdout == plain.stdout and "Rufus" in plain.stdout
    # Sampled replies cannot be checked against a guess: said, not ignored.
    sampled = run_cli("chat", "-m", str(smollm2_path), "--prompt-lookup", question)
    assert sampled.returncode == 2 and sampled.stderr.strip().splitlines() == [
        "llamadesk: --prompt-lookup checks guesses against greedy decoding: give --temperature 0 --repeat-penalty 1 too"
    ]
