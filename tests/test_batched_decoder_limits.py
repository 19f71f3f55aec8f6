"""The batched decoder at its limits, with the real SmolLM2: a full context, a cache given up to
make room, a prefix copied from a busy slot, logprobs, and the decoder's own life cycle.

A small batch (64 tokens) and small contexts (256 cells, llama.cpp's smallest) reach each limit
with a few hundred tokens; prompts made of arbitrary token ids serve where the text does not matter.
"""

from __future__ import annotations

import math
import threading

import pytest

from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.engine.types import LoadSettings, Sampling, TextPiece
from tests.conftest import PINNED_LOAD

GREEDY = Sampling(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, seed=0, max_tokens=8)


def tokens(start: int, count: int) -> list[int]:
    """A prompt of `count` ordinary tokens (ids from `start`): different starts share no prefix."""
    return list(range(start, start + count))


@pytest.fixture(scope="module")
def engine(smollm2_path):
    from llamadesk.app.engine.llama_engine import Engine

    with Engine.load(smollm2_path, LoadSettings(n_ctx=1024, **{**PINNED_LOAD, "n_batch": 64})) as loaded:
        yield loaded


def test_a_decoder_without_sequences_is_refused(engine):
    with pytest.raises(BadInputError, match="^a batched decoder needs at least one sequence$"):
        engine.batched_decoder(0)


def test_a_closed_decoder_refuses_new_sequences(engine):
    decoder = engine.batched_decoder(1, n_ctx=256)
    decoder.close()
    decoder.close()  # a second close is harmless
    with pytest.raises(LlamadeskError, match="^the batched decoder is closed$"):
        decoder.submit(tokens(1000, 4), GREEDY)


def test_waiting_for_a_sequence_can_time_out(engine):
    with engine.batched_decoder(1, n_ctx=256) as decoder:
        with decoder.starting_together():  # the decoder cannot admit it while the block holds
            handle = decoder.submit(tokens(1000, 4), GREEDY)
            with pytest.raises(TimeoutError, match="still decoding"):
                handle.result(timeout=0.01)
        assert handle.result(timeout=60).stats.generated_tokens == 8


def test_a_stop_asked_while_idle_ends_what_was_queued_with_it_and_nothing_after(engine):
    with engine.batched_decoder(1, n_ctx=256) as decoder:
        with decoder.starting_together():
            decoder.request_stop()
            queued = decoder.submit(tokens(1000, 4), GREEDY)
        stopped = queued.result(timeout=60)
        assert stopped.pieces == [] and stopped.stats.stop_reason == "stopped"
        assert stopped.stats.generated_tokens == 0 and stopped.stats.prompt_tokens == 4
        after = decoder.generate(tokens(1000, 4), GREEDY)
        assert after.stats.stop_reason == "length" and after.stats.generated_tokens == 8


def test_a_prompt_that_overfills_the_shared_cache_waits_and_every_sequence_completes(engine):
    alone = []
    for start in (1000, 3000):
        with engine.batched_decoder(1, n_ctx=256) as solo:  # a fresh cache each: nothing shelved
            alone.append(solo.generate(tokens(start, 150), GREEDY).text)
    with engine.batched_decoder(2, n_ctx=256) as decoder:
        assert decoder.n_ctx == 256
        with decoder.starting_together():  # 2 x 158 cells do not fit in 256, 64 tokens a step
            handles = [decoder.submit(tokens(start, 150), GREEDY) for start in (1000, 3000)]
        results = [handle.result(timeout=60) for handle in handles]
        # The second gave way while reading its prompt and started again once the first had ended.
        assert [r.stats.stop_reason for r in results] == ["length", "length"]
        assert [r.text for r in results] == alone
        assert results[1].stats.generated_tokens == 8
        assert decoder.generate(tokens(5000, 4), GREEDY).stats.stop_reason == "length"  # it goes on


def test_generating_sequences_that_outgrow_the_cache_cut_one_short_and_the_other_goes_on(engine):
    long = Sampling(**{**GREEDY.__dict__, "max_tokens": 100})
    with engine.batched_decoder(2, n_ctx=256) as decoder:
        with decoder.starting_together():  # 2 x (100 + 100) cells: full after ~28 tokens each
            handles = [decoder.submit(tokens(start, 100), long) for start in (1000, 3000)]
        results = [handle.result(timeout=120) for handle in handles]
        reasons = sorted(r.stats.stop_reason for r in results)
        assert reasons == ["context", "length"], reasons
        cut = next(r for r in results if r.stats.stop_reason == "context")
        assert 0 < cut.stats.generated_tokens < 100
        assert max(r.stats.generated_tokens for r in results) == 100


def test_caches_kept_in_free_slots_are_given_up_when_a_sequence_needs_the_room(engine):
    one = Sampling(**{**GREEDY.__dict__, "max_tokens": 1})
    with engine.batched_decoder(2, n_ctx=256) as decoder:
        with decoder.starting_together():
            first = decoder.submit(tokens(1000, 100), one)
            second = decoder.submit(tokens(3000, 100), one)
        assert [h.result(timeout=60).stats.stop_reason for h in (first, second)] == ["length", "length"]
        # 200 cells are kept. This prompt starts like the first and needs 100 cells more than
        # are free once the first's cache is cut to the shared 50: the second's is given up.
        grown = decoder.generate(tokens(1000, 50) + tokens(5000, 100), GREEDY)
        assert grown.stats.cached_prompt_tokens == 50 and grown.stats.generated_tokens == 8
        assert grown.stats.stop_reason == "length"
        again = decoder.generate(tokens(3000, 100), one)
        assert again.stats.cached_prompt_tokens == 0  # its cache was given up, not kept


def test_a_prompt_starting_like_a_busy_sequence_copies_its_prefix(engine):
    prefix = "Once upon a time, there was a"
    longer = prefix + " wise old owl"  # not what the first goes on with
    a_tokens, b_tokens = engine.tokenize(prefix), engine.tokenize(longer)
    assert b_tokens[: len(a_tokens)] == a_tokens
    alone = "".join(e.text for e in engine.stream_completion(longer, GREEDY) if isinstance(e, TextPiece))
    a_started, b_submitted = threading.Event(), threading.Event()

    def hold_until_b_is_submitted(piece: TextPiece) -> bool:
        a_started.set()
        b_submitted.wait(60)  # keeps the first sequence busy in its slot until the second arrives
        return False

    long = Sampling(**{**GREEDY.__dict__, "max_tokens": 24})
    with engine.batched_decoder(2, n_ctx=512) as decoder:
        busy = decoder.submit(a_tokens, long, hold_until_b_is_submitted)
        assert a_started.wait(60)  # its prompt is in slot 0's cache now
        b = decoder.submit(b_tokens, GREEDY)
        b_submitted.set()
        result = b.result(timeout=60)
        first = busy.result(timeout=60)
    assert first.stats.generated_tokens == 24 and not first.text.startswith(" wise")
    assert result.stats.cached_prompt_tokens == len(a_tokens)
    assert result.text == alone


def test_a_prefix_given_up_by_a_slot_is_shelved_and_taken_back(engine):
    first, other = tokens(1000, 100), tokens(3000, 100)
    returning = first + tokens(5000, 20)  # starts as the first prompt, after another took its slot
    with engine.batched_decoder(1, n_ctx=512) as fresh:
        fresh.generate(first, GREEDY)
        expected = fresh.generate(returning, GREEDY)  # the first prompt still in the slot
    assert expected.stats.cached_prompt_tokens == 100
    with engine.batched_decoder(1, n_ctx=512) as decoder:
        decoder.generate(first, GREEDY)
        assert decoder.generate(other, GREEDY).stats.cached_prompt_tokens == 0
        back = decoder.generate(returning, GREEDY)
    assert back.stats.cached_prompt_tokens == 100  # from the shelf, not read again
    assert back.text == expected.text


def test_shelves_give_their_cells_back_when_a_prompt_needs_the_room(engine):
    with engine.batched_decoder(1, n_ctx=256) as decoder:
        decoder.generate(tokens(1000, 100), GREEDY)
        decoder.generate(tokens(3000, 100), GREEDY)  # the first's 108 cells go on a shelf
        large = decoder.generate(tokens(5000, 200), GREEDY)  # needs 208 of the 256 cells
    assert large.stats.stop_reason == "length" and large.stats.generated_tokens == 8


def test_a_failure_while_a_sequence_is_admitted_reaches_its_caller(engine, monkeypatch):
    decoder = engine.batched_decoder(1, n_ctx=256)

    def broken(*_args):
        raise RuntimeError("llama.cpp went wrong")

    monkeypatch.setattr(decoder, "_longest_prefix", broken)
    try:
        handle = decoder.submit(tokens(1000, 4), GREEDY)
        with pytest.raises(LlamadeskError, match="^batched decoding failed: llama.cpp went wrong$"):
            handle.result(timeout=60)  # not a caller left waiting forever
        assert decoder.failed
    finally:
        decoder.close()


def test_logprobs_of_a_sequence_match_the_engines(engine):
    sampling = Sampling(**{**GREEDY.__dict__, "logprobs": True})
    prompt = "The capital of France is"
    alone = [e for e in engine.stream_completion(prompt, sampling) if isinstance(e, TextPiece)]
    with engine.batched_decoder(1, n_ctx=256) as decoder:
        result = decoder.generate(engine.tokenize(prompt), sampling)
    assert [p.text for p in result.pieces] == [p.text for p in alone]
    assert [p.tokens for p in result.pieces] == [p.tokens for p in alone]
    assert sum(p.tokens for p in result.pieces) == result.stats.generated_tokens == 8
    for ours, engines in zip(result.pieces, alone, strict=True):
        assert ours.logprob <= 0.0 and math.isclose(ours.logprob, engines.logprob, abs_tol=1e-3)


def test_a_grammar_that_is_complete_ends_the_sequence(engine):
    yes = Sampling(**{**GREEDY.__dict__, "max_tokens": 16, "grammar": 'root ::= "yes"'})
    with engine.batched_decoder(1, n_ctx=256) as decoder:
        result = decoder.generate(engine.tokenize("Is Paris in France?"), yes)
    assert result.text == "yes" and result.stats.stop_reason == "end"


def test_a_sequence_that_fills_the_context_ends_with_reason_context(engine):
    with engine.batched_decoder(1, n_ctx=256) as decoder:
        handle = decoder.submit(tokens(1000, 253), Sampling(**{**GREEDY.__dict__, "max_tokens": None}), ignore_end=True)
        stats = handle.result(timeout=60).stats
    assert stats.stop_reason == "context"
    assert stats.prompt_tokens + stats.generated_tokens == 256 and stats.context_tokens == 255


def test_a_prefix_that_came_back_keeps_its_shelf_over_prompts_nobody_shares(engine):
    # A strict retry's prefix (here `header`) returns now and then; between two returns, prompts
    # whose text no other prompt shares are given up too. Least-recently-used alone would push
    # the header off both shelves; it stays because a second prompt already started with it.
    header = tokens(1000, 100)
    with engine.batched_decoder(1, n_ctx=512) as decoder:
        decoder.generate(header + tokens(7000, 10), GREEDY)
        assert decoder.generate(header + tokens(7100, 10), GREEDY).stats.cached_prompt_tokens == 100
        for start in (3000, 4000, 5000):  # each gives up the slot's last prompt to a shelf
            assert decoder.generate(tokens(start, 100), GREEDY).stats.cached_prompt_tokens == 0
        back = decoder.generate(header + tokens(7200, 10), GREEDY)
        assert back.stats.cached_prompt_tokens == 100
        # Unshared prompts still use the other shelf: the last one given up (for the header's
        # return) comes back too, the one before it does not.
        assert decoder.generate(tokens(5000, 100) + tokens(8000, 5), GREEDY).stats.cached_prompt_tokens == 100
        assert decoder.generate(tokens(4000, 100) + tokens(8000, 5), GREEDY).stats.cached_prompt_tokens == 0


def _failing_outcomes(monkeypatch):
    """Make every sequence's outcome fail to be made, as a bug in the decoder's bookkeeping would."""
    from llamadesk.app.engine import batched_decoder

    def boom(*args, **kwargs):
        raise RuntimeError("stats went wrong")

    monkeypatch.setattr(batched_decoder, "_stats", boom)


def test_a_failure_while_ending_a_sequence_reaches_its_caller(engine, monkeypatch):
    """The sequence was taken out of the active ones before its outcome was made: a failure there
    reached no one, and its caller (a translation's worker) waited forever."""
    with engine.batched_decoder(1, n_ctx=256) as decoder:
        _failing_outcomes(monkeypatch)
        handle = decoder.submit(tokens(1000, 4), GREEDY)
        with pytest.raises(LlamadeskError, match="batched decoding failed: stats went wrong"):
            handle.result(timeout=60)


def test_a_failure_while_ending_a_cancelled_queued_request_reaches_its_caller(engine, monkeypatch):
    with engine.batched_decoder(1, n_ctx=512) as decoder:
        long = Sampling(**{**GREEDY.__dict__, "max_tokens": 200})
        with decoder.starting_together():
            running = decoder.submit(tokens(1000, 4), long)
            queued = decoder.submit(tokens(2000, 4), GREEDY)  # one slot: it waits for the first
        _failing_outcomes(monkeypatch)
        decoder.cancel(queued)
        for handle in (queued, running):
            with pytest.raises(LlamadeskError, match="batched decoding failed: stats went wrong"):
                handle.result(timeout=60)
