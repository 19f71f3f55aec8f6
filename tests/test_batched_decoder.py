"""The batched decoder with the real starters: several sequences per llama_decode, each as if alone.

One sequence at a time runs the engine's kernels on the same shapes, so it must say exactly what
the engine says. Several at once change the shapes llama.cpp's CPU kernels see, which can move a
near-tie (bench/RESULTS.md "batched" measures how often); with SmolLM2 and these prompts started
together, each still says what it says alone, which catches a wrong position, sequence id or
reused prefix at its first token.
"""

from __future__ import annotations

import threading

import pytest

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.engine.types import LoadSettings, Sampling, TextPiece
from tests.conftest import PINNED_LOAD

GREEDY = Sampling(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, seed=0, max_tokens=16)
PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a",
    "def fibonacci(n):",
    "The three primary colors are",
    "The capital of France is a city",  # shares a prefix with the first: it comes from the cache
    "Water boils at",
]


def sequential(engine, prompt: str, sampling: Sampling) -> str:
    return "".join(e.text for e in engine.stream_completion(prompt, sampling) if isinstance(e, TextPiece))


@pytest.fixture(scope="module")
def smollm2_decoder(smollm2_engine):
    with smollm2_engine.batched_decoder(4, n_ctx=1024) as decoder:
        yield decoder


@pytest.fixture(scope="module")
def gemma_engine(gemma_path):
    from llamadesk.app.engine.llama_engine import Engine

    with Engine.load(gemma_path, LoadSettings(n_ctx=1024, **PINNED_LOAD)) as engine:
        yield engine


def test_sequences_decoded_together_say_what_each_says_alone(smollm2_engine, smollm2_decoder):
    alone = [sequential(smollm2_engine, p, GREEDY) for p in PROMPTS]
    with smollm2_decoder.starting_together():
        handles = [smollm2_decoder.submit(smollm2_engine.tokenize(p), GREEDY) for p in PROMPTS]
    results = [h.result(timeout=120) for h in handles]
    # A wrong position, sequence id or reused prefix shows in the first tokens. Further on, a token
    # decoded beside others is rounded differently from one decoded alone (bench/RESULTS.md "batch
    # numerics"), which can flip a near tie: one reply of the six may part from its sequential twin.
    for result, reference in zip(results, alone, strict=True):
        assert result.text[:12] == reference[:12]
    assert sum(result.text == reference for result, reference in zip(results, alone, strict=True)) >= len(PROMPTS) - 1
    assert all(r.stats.generated_tokens >= 1 for r in results)
    assert results[4].stats.cached_prompt_tokens >= 5  # "The capital of France is" was in a slot already


def test_seeded_sampling_matches_the_engine_through_the_same_sampler_chain(smollm2_engine, smollm2_decoder):
    warm = Sampling(temperature=0.9, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1, seed=7, max_tokens=16)
    prompts = PROMPTS[:3]
    alone = [sequential(smollm2_engine, p, warm) for p in prompts]
    with smollm2_decoder.starting_together():
        handles = [smollm2_decoder.submit(smollm2_engine.tokenize(p), warm) for p in prompts]
    assert [h.result(timeout=120).text for h in handles] == alone


def test_one_gemma_sequence_matches_the_engine(gemma_engine):
    prompts = PROMPTS[:2]
    alone = [sequential(gemma_engine, p, GREEDY) for p in prompts]
    with gemma_engine.batched_decoder(1, n_ctx=512) as decoder:
        assert [decoder.generate(gemma_engine.tokenize(p), GREEDY).text for p in prompts] == alone


def test_each_sequence_has_its_own_stops(smollm2_engine, smollm2_decoder):
    seen: list[str] = []

    def stop_at_first_piece(piece: TextPiece) -> bool:
        seen.append(piece.text)
        return True

    short = Sampling(**{**GREEDY.__dict__, "max_tokens": 3})
    stopped = smollm2_decoder.submit(smollm2_engine.tokenize(PROMPTS[0]), GREEDY, stop_at_first_piece)
    limited = smollm2_decoder.submit(smollm2_engine.tokenize(PROMPTS[1]), short)
    long = smollm2_decoder.submit(smollm2_engine.tokenize(PROMPTS[2]), GREEDY)
    assert stopped.result(timeout=60).text == seen[0] and stopped.result().stats.stop_reason == "end"
    assert limited.result(timeout=60).stats.generated_tokens == 3
    assert limited.result().stats.stop_reason == "length"
    assert long.result(timeout=60).stats.generated_tokens == 16


def test_request_stop_ends_every_sequence_and_the_decoder_goes_on(smollm2_engine, smollm2_decoder):
    endless = Sampling(**{**GREEDY.__dict__, "max_tokens": 400})
    first_piece = threading.Event()
    handles = [
        smollm2_decoder.submit(smollm2_engine.tokenize(p), endless, lambda _piece: first_piece.set() and False)
        for p in PROMPTS[:3]
    ]
    assert first_piece.wait(60)
    smollm2_decoder.request_stop()
    results = [h.result(timeout=60) for h in handles]
    assert {r.stats.stop_reason for r in results} == {"stopped"}
    assert all(r.stats.generated_tokens < 400 for r in results)
    after = smollm2_decoder.generate(smollm2_engine.tokenize(PROMPTS[0]), GREEDY)
    assert after.text == sequential(smollm2_engine, PROMPTS[0], GREEDY)


def test_prompts_it_cannot_take_are_refused(smollm2_decoder):
    with pytest.raises(BadInputError, match="empty"):
        smollm2_decoder.submit([], GREEDY)
    with pytest.raises(BadInputError, match="holds 1024"):
        smollm2_decoder.submit([1] * 2000, GREEDY)


def test_one_callers_mistake_ends_only_its_own_sequence(smollm2_engine, smollm2_decoder):
    bad_grammar = Sampling(**{**GREEDY.__dict__, "grammar": "root ::= ("})

    def broken_callback(_piece: TextPiece) -> bool:
        raise ValueError("the caller's bug")

    with smollm2_decoder.starting_together():
        refused = smollm2_decoder.submit(smollm2_engine.tokenize(PROMPTS[0]), bad_grammar)
        failed = smollm2_decoder.submit(smollm2_engine.tokenize(PROMPTS[1]), GREEDY, broken_callback)
        fine = smollm2_decoder.submit(smollm2_engine.tokenize(PROMPTS[2]), GREEDY)
    with pytest.raises(BadInputError, match="GBNF"):
        refused.result(timeout=60)
    with pytest.raises(ValueError, match="caller's bug"):
        failed.result(timeout=60)
    assert fine.result(timeout=60).text == sequential(smollm2_engine, PROMPTS[2], GREEDY)


def test_the_same_seeded_request_twice_gets_the_same_reply(smollm2_engine, smollm2_decoder):
    """The second request takes its prompt from the cache and decodes only the last token again;
    the decoder reads a prompt's last token in a step of its own the first time too, so the two
    replies start from the same logits (tests/test_engine.py checks the single stream)."""
    prompt = smollm2_engine.tokenize(" ".join(f"Rule {i}: write about the sea and the wind." for i in range(8)))
    assert len(prompt) > 64  # flash attention takes its batched path for 64 tokens or more
    sampling = Sampling(temperature=1.0, top_p=1.0, seed=1234, max_tokens=40)
    first, second = smollm2_decoder.generate(prompt, sampling), smollm2_decoder.generate(prompt, sampling)
    assert first.stats.cached_prompt_tokens < second.stats.cached_prompt_tokens == len(prompt) - 1
    assert first.text == second.text and len(first.text) > 20


def test_a_stream_per_sequence_continues_a_prefix_copied_from_another_stream(smollm2_engine):
    """The batch-invariant decoder's streams: a prompt whose prefix a busy slot holds gets it by
    copying that slot's stream (llama.cpp copies whole streams; the copy is trimmed), with its
    cells where they were, so it continues as the original did. (That its tokens then come out
    bit-identical to decoding alone needs the engine's batch-invariant kernels too, a setting of
    the whole process: tests/test_translate_parallel.py checks it through the CLI.)"""
    prompt = smollm2_engine.tokenize("The three primary colors are red, yellow and blue. The capital of France is")
    longer = smollm2_engine.tokenize(
        "The three primary colors are red, yellow and blue. The capital of France is Paris, and Germany's"
    )
    with _streams_decoder(smollm2_engine, 2) as decoder:
        assert decoder.n_ctx == 256  # each sequence's own stream, not a share of one cache
        first = decoder.generate(prompt, GREEDY)
        busy = decoder.submit(longer, Sampling(temperature=0.0, max_tokens=100), ignore_end=True)
        again = decoder.generate(prompt, GREEDY)  # slot 0 is busy: its stream is copied into slot 1
        busy.result(timeout=120)
    assert again.stats.cached_prompt_tokens == len(prompt) - 1
    assert first.text.strip() and again.text[:12] == first.text[:12]
    with _streams_decoder(smollm2_engine, 1) as decoder, pytest.raises(BadInputError):
        decoder.submit(smollm2_engine.tokenize("word " * 300), GREEDY)  # past its stream: refused, not cut


def _streams_decoder(engine, n_sequences: int, output_tile: int = 1):
    """A decoder with a KV stream per sequence, as `translate` makes on a batch-invariant engine."""
    from llamadesk.app.engine.batched_decoder import BatchedDecoder
    from llamadesk.app.engine.llama_engine import ggml_type_id

    return BatchedDecoder(
        engine._llama._model.model,
        n_sequences=n_sequences,
        n_ctx=256,
        n_batch=512,
        n_threads=1,
        kv_type=ggml_type_id("f16"),
        flash_attn=True,
        batch_invariant=True,
        output_tile=output_tile,
    )


def _record_steps(monkeypatch) -> list[tuple[list[int], int]]:
    """Every llama_decode from here on: the sequence id of each token, and how many logits rows it asked."""
    import llama_cpp

    steps: list[tuple[list[int], int]] = []
    decode = llama_cpp.llama_decode

    def recorded(context, batch):
        n = batch.n_tokens
        steps.append(([batch.seq_id[i][0] for i in range(n)], sum(1 for i in range(n) if batch.logits[i])))
        return decode(context, batch)

    monkeypatch.setattr(llama_cpp, "llama_decode", recorded)
    return steps


def _run(decoder, engine, prompts: list[str], lengths: list[int]) -> list[str]:
    with decoder.starting_together():
        handles = [
            decoder.submit(engine.tokenize(p), Sampling(temperature=0.0, max_tokens=n), ignore_end=True)
            for p, n in zip(prompts, lengths, strict=True)
        ]
    return [h.result(timeout=120).text for h in handles]


def test_sequences_left_in_flight_move_to_the_first_slots_and_go_on_as_before(smollm2_engine, monkeypatch):
    """With a stream per sequence, llama.cpp takes sequences in one weight pass only as a run of
    consecutive ids; when those in slots 0 and 2 end, the one in slot 3 moves to slot 0 (its
    stream copied) and says what it says when nothing moves it."""
    prompts = ["The capital of France is", "Once upon a time, there was a", "def fibonacci(n):", "Water boils at"]
    lengths = [2, 24, 2, 24]
    with _streams_decoder(smollm2_engine, 4) as decoder:
        alone = [_run(decoder, smollm2_engine, [p], [n])[0] for p, n in zip(prompts, lengths, strict=True)]
        steps = _record_steps(monkeypatch)
        together = _run(decoder, smollm2_engine, prompts, lengths)
    assert together == alone
    assert all(len(set(ids)) == 4 for ids, _ in steps[:2])  # all four at first ...
    later = [sorted(set(ids)) for ids, _ in steps[3:]]
    assert later and all(ids == [0, 1] for ids in later)  # ... then the two left, in slots 0 and 1


def test_a_step_sampling_six_sequences_computes_eight_logits_rows_on_fillers(smollm2_engine, monkeypatch):
    """On kernels that take logits rows four at a time (engine/output_tiles.py), a step that
    samples six sequences asks for eight rows: the first token of a prompt being read, then filler
    tokens on the free slots after the run, which leave those slots as they were."""
    import llama_cpp

    prompts = [f"Write a short poem about the number {i}:" for i in range(6)]
    lengths = [8] * 6
    with _streams_decoder(smollm2_engine, 8, output_tile=1) as plain:
        expected = _run(plain, smollm2_engine, prompts, lengths)
    with _streams_decoder(smollm2_engine, 8, output_tile=4) as decoder:
        late: list[str] = []
        late_prompt = smollm2_engine.tokenize("The three primary colors are red, yellow and blue. Name them again:")

        def submit_late(piece) -> bool:
            if not late:  # while the six generate, a seventh arrives with a prompt to read
                late.append("submitted")
                decoder.submit(late_prompt, Sampling(temperature=0.0, max_tokens=4))
            return False

        steps = _record_steps(monkeypatch)
        with decoder.starting_together():
            handles = [
                decoder.submit(
                    smollm2_engine.tokenize(p),
                    Sampling(temperature=0.0, max_tokens=n),
                    submit_late if i == 0 else None,
                    ignore_end=True,
                )
                for i, (p, n) in enumerate(zip(prompts, lengths, strict=True))
            ]
        assert [h.result(timeout=120).text for h in handles] == expected
        held = [llama_cpp.llama_memory_seq_pos_max(decoder._memory, slot) for slot in range(7, 10)]
    sampling_six = [(ids, rows) for ids, rows in steps if len(set(ids)) == 8 and rows == 8]
    assert sampling_six, "no step padded its six logits rows to eight"
    # Fillers are one token each on slots 6-7, or 7 when the seventh's prompt gives a row.
    with_prompt = [ids for ids, _ in sampling_six if ids.count(6) > 1]
    assert with_prompt, "the seventh sequence's prompt row was not used for a logits row"
    assert all(ids.count(7) == 1 for ids, _ in sampling_six)
    assert held == [-1, -1, -1] and not decoder._fillers  # what the fillers decoded was removed
