"""Lockstep callers and shared prompt prefixes in the batched decoder, on the real SmolLM2 starter.

Which tokens share a llama_decode moves what llama.cpp computes for each (its CPU kernels take
other paths for a token decoded beside others), so repeatable output needs batches that do not
follow thread timing. The batches are recorded by wrapping llama_decode, the one call that shows them.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.engine.token_prefix import common_prefix
from llamadesk.app.engine.types import Sampling

GREEDY = Sampling(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, seed=0, max_tokens=6)
SHARED = (
    "You are a careful assistant. Answer every question with one short sentence, in plain words, "
    "without lists, without markdown and without repeating the question. Keep to facts that "
    "every child learns at school, and say nothing about yourself. "
)
QUESTIONS = [
    "What colour is the sky?",
    "What do bees make?",
    "Where does the sun rise?",
    "What is ice made of?",
    "How many legs has a spider?",
    "What do cows drink?",
]


def run_members(engine, decoder, jitter_seed: int, calls_per_member: int = 2) -> dict[int, list[str]]:
    """Three lockstep members, each asking its questions in turn with random pauses between calls."""
    members = [decoder.join_lockstep() for _ in range(3)]
    answers: dict[int, list[str]] = {i: [] for i in range(3)}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        pause = random.Random(jitter_seed * 10 + index)
        member = members[index]
        try:
            for call in range(calls_per_member):
                time.sleep(pause.uniform(0.0, 0.25))  # a translator's own work between model calls
                member.order = index
                question = QUESTIONS[(index * calls_per_member + call) % len(QUESTIONS)]
                tokens = engine.tokenize(SHARED + question, add_bos=True)
                answers[index].append(decoder.generate(tokens, GREEDY, member=member).text)
        except BaseException as error:
            errors.append(error)
        finally:
            member.leave()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    return answers


def test_lockstep_batches_do_not_depend_on_thread_timing(smollm2_engine, decode_sizes):
    with smollm2_engine.batched_decoder(3, n_ctx=1024) as decoder:
        first = run_members(smollm2_engine, decoder, jitter_seed=1)
        batches_first = list(decode_sizes)
    decode_sizes.clear()
    with smollm2_engine.batched_decoder(3, n_ctx=1024) as decoder:
        second = run_members(smollm2_engine, decoder, jitter_seed=2)  # other pauses, same work
        batches_second = list(decode_sizes)
    assert batches_first == batches_second
    assert first == second
    assert max(batches_first) > 1 and len(batches_first) < 3 * 2 * GREEDY.max_tokens, "the members shared batches"


def test_the_decoder_stops_waiting_for_a_member_that_left(smollm2_engine):
    with smollm2_engine.batched_decoder(2, n_ctx=512) as decoder:
        idle = decoder.join_lockstep()  # joins and never submits
        busy = decoder.join_lockstep()
        result: list[str] = []
        worker = threading.Thread(
            target=lambda: result.append(
                decoder.generate(smollm2_engine.tokenize("Water boils at", add_bos=True), GREEDY, member=busy).text
            )
        )
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive(), "the decoder waits for every member before a step"
        idle.leave()
        worker.join(timeout=60)
        assert not worker.is_alive() and result and result[0]
        idle.leave()  # leaving twice changes nothing
        busy.leave()
        with pytest.raises(LlamadeskError, match="left"):
            decoder.generate(smollm2_engine.tokenize("Hi", add_bos=True), GREEDY, member=busy)


def test_a_refused_member_request_does_not_stall_the_others(smollm2_engine):
    with smollm2_engine.batched_decoder(2, n_ctx=512) as decoder:
        members = [decoder.join_lockstep() for _ in range(2)]
        outcome: dict[str, object] = {}

        def bad() -> None:
            try:
                decoder.generate([1, 2, 3], Sampling(temperature=0.0, grammar="root ::= ("), member=members[0])
            except LlamadeskError as error:
                outcome["bad"] = error
            finally:
                members[0].leave()

        def good() -> None:
            tokens = smollm2_engine.tokenize("The capital of France is", add_bos=True)
            outcome["good"] = decoder.generate(tokens, GREEDY, member=members[1]).text
            members[1].leave()

        threads = [threading.Thread(target=bad), threading.Thread(target=good)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert "grammar" in str(outcome["bad"]) and outcome["good"]


def test_prompts_arriving_together_read_their_shared_prefix_once(smollm2_engine, decode_sizes):
    prompts = [smollm2_engine.tokenize(SHARED + q, add_bos=True) for q in QUESTIONS[:4]]
    shared = min(common_prefix(prompts[0], p) for p in prompts[1:])  # what all four start with
    assert shared >= 32
    with smollm2_engine.batched_decoder(4, n_ctx=1024) as decoder:
        with decoder.starting_together():
            handles = [decoder.submit(p, GREEDY) for p in prompts]
        results = [h.result(timeout=120) for h in handles]
    prompt_tokens = sum(len(p) for p in prompts)
    generated = sum(r.stats.generated_tokens for r in results)
    # The first prompt is read whole; the other three only past what they share with it.
    assert [r.stats.cached_prompt_tokens >= shared for r in results] == [False, True, True, True]
    assert sum(decode_sizes) <= prompt_tokens - 3 * shared + generated
    for prompt, result in zip(prompts, results, strict=True):
        alone = "".join(
            e.text for e in smollm2_engine.stream_tokens(prompt, GREEDY) if getattr(e, "text", None) is not None
        )
        assert result.text == alone


def run_with_a_member_of_many(engine, decoder, jitter_seed: int) -> tuple[list[str], list[str]]:
    """Lockstep member 0 asks for three answers at once (a translator's sampled candidates) at the
    start; member 1 asks two questions in turn, each after a random pause."""
    many, one = decoder.join_lockstep(), decoder.join_lockstep()
    out: dict[str, list[str]] = {"many": [], "one": []}
    errors: list[BaseException] = []
    samplings = [Sampling(temperature=0.8, top_k=0, top_p=1.0, min_p=0.05, seed=s, max_tokens=6) for s in (1, 2, 3)]

    def ask_many() -> None:
        try:
            tokens = engine.tokenize(SHARED + QUESTIONS[0], add_bos=True)
            with decoder.starting_together():
                handles = [decoder.submit(tokens, sampling, member=many) for sampling in samplings]
            out["many"] = [handle.result().text for handle in handles]
        except BaseException as error:
            errors.append(error)
        finally:
            many.leave()

    def ask_one() -> None:
        pause = random.Random(jitter_seed)
        try:
            one.order = 1
            for question in QUESTIONS[1:3]:
                time.sleep(pause.uniform(0.0, 0.6))  # long enough for the other's answers to finish alone
                out["one"].append(
                    decoder.generate(engine.tokenize(SHARED + question, add_bos=True), GREEDY, member=one).text
                )
        except BaseException as error:
            errors.append(error)
        finally:
            one.leave()

    threads = [threading.Thread(target=ask_many), threading.Thread(target=ask_one)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    return out["many"], out["one"]


def test_a_member_with_several_sequences_in_flight_still_waits_for_the_others(smollm2_engine, decode_sizes):
    """The decoder steps once every member has something in flight, counting members, not sequences:
    three sequences of one member must not let it step while the other is between calls."""
    with smollm2_engine.batched_decoder(4, n_ctx=1024) as decoder:
        first = run_with_a_member_of_many(smollm2_engine, decoder, jitter_seed=1)
        batches_first = list(decode_sizes)
    decode_sizes.clear()
    with smollm2_engine.batched_decoder(4, n_ctx=1024) as decoder:
        second = run_with_a_member_of_many(smollm2_engine, decoder, jitter_seed=2)
        batches_second = list(decode_sizes)
    assert batches_first == batches_second
    assert first == second
    assert len(first[0]) == 3 and any(first[0]) and len(first[1]) == 2 and all(first[1])
