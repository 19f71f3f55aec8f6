"""The engine with the real starter models through real llama.cpp."""

from __future__ import annotations

import codecs
import threading
import time

import pytest

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.engine.types import GenerationDone, Sampling, TextPiece, generation_rate
from llamadesk.app.engine.utf8_stream import Utf8Stream
from llamadesk.app.settings.chat_defaults import DEFAULT_SYSTEM_PROMPT
from tests.conftest import PINNED_LOAD

GREEDY = Sampling(temperature=0.0)


def ask(question: str) -> list[dict]:
    return [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": question}]


def collect(events) -> tuple[str, GenerationDone]:
    pieces, done = [], None
    for event in events:
        if isinstance(event, TextPiece):
            pieces.append(event.text)
        else:
            done = event
    assert isinstance(done, GenerationDone)
    return "".join(pieces), done


def test_greedy_answer_names_paris_and_is_reproducible(smollm2_engine):
    first, _ = collect(smollm2_engine.stream_chat(ask("What is the capital of France?"), GREEDY))
    second, _ = collect(smollm2_engine.stream_chat(ask("What is the capital of France?"), GREEDY))
    assert "Paris" in first
    assert first == second


def test_stats_are_present_and_plausible(smollm2_engine):
    messages = ask("Name three colours.")
    prompt_tokens = len(smollm2_engine.chat_prompt_tokens(messages))
    started = time.perf_counter()
    text, done = collect(smollm2_engine.stream_chat(messages, Sampling(temperature=0.0, max_tokens=20)))
    wall = time.perf_counter() - started
    stats = done.stats
    assert stats.prompt_tokens == prompt_tokens
    assert 1 <= stats.generated_tokens <= 20
    assert stats.stop_reason in ("end", "length")
    # Rates are positive and add up to the time the reply really took (no speed thresholds:
    # a busy machine is slow, not wrong).
    assert 0 < stats.time_to_first_token <= wall
    assert stats.generated_tokens_per_second > 0 and stats.prompt_tokens_per_second > 0
    # The tokens decoded after the first: every shown one but the last, and the last too when the
    # model ended the reply (its decode picked the end token).
    decoded = stats.generated_tokens - (0 if stats.stop_reason == "end" else 1)
    generation_time = decoded / stats.generated_tokens_per_second
    assert stats.time_to_first_token + generation_time == pytest.approx(wall, rel=0.2, abs=0.05)
    evaluated = stats.prompt_tokens - stats.cached_prompt_tokens
    assert evaluated / stats.prompt_tokens_per_second <= stats.time_to_first_token + 1e-6
    assert stats.context_tokens == prompt_tokens + decoded  # what the cache holds: the prompt and those
    assert stats.n_ctx == smollm2_engine.n_ctx
    assert text.strip()


@pytest.mark.parametrize(
    ("generated", "ended_on_eog", "rate"),
    [(51, True, 51.0), (51, False, 50.0), (1, True, 1.0), (1, False, 0.0), (0, True, 0.0), (2, False, 1.0)],
)
def test_the_generation_rate_counts_each_decode_after_the_first_token(generated, ended_on_eog, rate):
    assert generation_rate(generated, ended_on_eog, 1.0) == rate
    assert generation_rate(generated, ended_on_eog, 0.0) == 0.0  # no time measured: no rate, no error


def test_max_tokens_ends_with_length(smollm2_engine):
    _, done = collect(
        smollm2_engine.stream_chat(ask("Tell me a long story about a dragon."), Sampling(temperature=0.0, max_tokens=5))
    )
    assert done.stats.generated_tokens == 5 and done.stats.stop_reason == "length"


def test_second_turn_reuses_the_cached_prefix(smollm2_engine):
    messages = ask("Say hello.")
    reply, _ = collect(smollm2_engine.stream_chat(messages, Sampling(temperature=0.0, max_tokens=10)))
    messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": "Again."}]
    _, done = collect(smollm2_engine.stream_chat(messages, Sampling(temperature=0.0, max_tokens=5)))
    assert done.stats.cached_prompt_tokens > 10


def _stream_in_thread(engine, tokens, sampling):
    state = {"pieces": 0, "done": None}
    started = threading.Event()

    def run():
        started.set()
        for event in engine.stream_tokens(tokens, sampling):
            if isinstance(event, TextPiece):
                state["pieces"] += 1
            else:
                state["done"] = event

    thread = threading.Thread(target=run)
    thread.start()
    started.wait()
    return thread, state


def test_stop_mid_stream_ends_within_half_a_second(smollm2_engine):
    tokens = smollm2_engine.chat_prompt_tokens(ask("Write a very long essay about the history of Europe."))
    thread, state = _stream_in_thread(smollm2_engine, tokens, Sampling(temperature=0.0, max_tokens=2000))
    deadline = time.monotonic() + 30
    while state["pieces"] < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert state["pieces"] >= 5
    asked = time.monotonic()
    smollm2_engine.request_stop()
    thread.join(5)
    assert time.monotonic() - asked < 0.5
    assert state["done"].stats.stop_reason == "stopped"


def test_stop_during_a_long_prompt_ends_within_half_a_second(smollm2_engine, capfd):
    text = " ".join(f"Sentence number {i} talks about rivers, mountains and cities." for i in range(200))
    tokens = smollm2_engine.chat_prompt_tokens(ask(text))
    assert len(tokens) >= 2000
    thread, state = _stream_in_thread(smollm2_engine, tokens, Sampling(temperature=0.0, max_tokens=50))
    time.sleep(0.3)  # well inside the prompt's decode, which takes seconds on 2 cores
    asked = time.monotonic()
    smollm2_engine.request_stop()
    thread.join(5)
    assert time.monotonic() - asked < 0.5
    assert state["pieces"] == 0 and state["done"].stats.stop_reason == "stopped"
    # llama.cpp warns as it drops the half-decoded batch; that is not for the user to read.
    assert capfd.readouterr().err == ""
    # The engine is usable again right after an abort, with a consistent cache.
    answer, _ = collect(smollm2_engine.stream_chat(ask("What is the capital of France?"), GREEDY))
    assert "Paris" in answer


TRICKY_TEXT = "東京は日本の首都です。🎉👍🏽 Ça va? Ελληνικά 한국어"


def test_token_bytes_split_characters_and_the_stream_rejoins_them(smollm2_engine):
    tokens = smollm2_engine.tokenize(TRICKY_TEXT, add_bos=False)
    raw = [smollm2_engine._llama.detokenize([t]) for t in tokens]
    # The test is only meaningful if some token really ends inside a character.
    assert any(_is_partial_utf8(r) for r in raw)
    stream = Utf8Stream()
    pieces = [stream.feed(r) for r in raw] + [stream.flush()]
    assert "".join(pieces) == TRICKY_TEXT
    assert all("\ufffd" not in p for p in pieces)


def test_generated_cjk_and_emoji_stream_without_garbage(smollm2_engine):
    """A reply cut by max_tokens inside a character ends before it, never with U+FFFD.

    Tested at every length that cuts the greedy reply inside a character (found from the reply's
    own tokens), not at one length that may or may not cut one.
    """
    llama = smollm2_engine._llama
    prompt = smollm2_engine.tokenize("Emoji and Japanese: 🎉👍🏽 東京 🎉👍🏽 東京 🎉👍🏽", add_bos=False)

    def reply(max_tokens: int):
        llama.reset()  # from an empty cache each time, so every run computes the same tokens
        return collect(smollm2_engine.stream_tokens(prompt, Sampling(temperature=0.0, max_tokens=max_tokens)))

    text, _ = reply(41)
    assert any(ord(c) > 0x2FFF for c in text), text  # it did produce wide characters
    assert "\ufffd" not in text
    generated = list(llama.eval_tokens)[len(prompt) :]  # the first 40 of the reply's tokens
    pieces = [llama.detokenize([t]) for t in generated]
    cuts = [n for n in range(1, len(pieces) + 1) if _is_partial_utf8(b"".join(pieces[:n]))]
    assert cuts, "no length of this reply ends inside a character"
    for n in cuts[:3]:
        text, done = reply(n)
        whole_characters = codecs.getincrementaldecoder("utf-8")().decode(b"".join(pieces[:n]))  # the tail held
        assert done.stats.stop_reason == "length" and text == whole_characters and "\ufffd" not in text


def test_the_stream_drops_a_character_the_reply_never_finished():
    stream = Utf8Stream()
    emoji = "🎉".encode()
    assert stream.feed(b"ok " + emoji[:2]) == "ok "
    assert stream.flush() == ""  # the half emoji is gone, not U+FFFD
    assert stream.feed(emoji) == "🎉"  # and the stream starts clean
    assert Utf8Stream().feed(b"\x80x") == "\ufffdx"  # a byte that starts no character is still shown as such


def test_prompt_longer_than_the_context_is_refused(smollm2_engine):
    with pytest.raises(BadInputError, match="context holds"):
        list(smollm2_engine.stream_tokens([1] * (smollm2_engine.n_ctx + 1)))


def _is_partial_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


def test_bench_measures_both_tests(smollm2_engine):
    results = smollm2_engine.bench(n_prompt=64, n_gen=8, repetitions=2)
    assert [r.test for r in results] == ["pp64", "tg8"]
    for r in results:
        assert len(r.samples) == 2 and r.tokens_per_second_mean > 0
        assert r.tokens_per_second_mean == pytest.approx(sum(r.samples) / 2)


def test_bench_at_a_depth_starts_after_that_many_tokens(smollm2_engine):
    results = smollm2_engine.bench(n_prompt=16, n_gen=4, repetitions=1, depth=40)
    assert [r.test for r in results] == ["pp16 @ d40", "tg4 @ d40"]
    assert all(r.tokens_per_second_mean > 0 for r in results)


def test_bench_refuses_a_depth_beyond_the_context(smollm2_engine):
    from llamadesk.app.core.errors import BadInputError

    with pytest.raises(BadInputError, match="context of at least"):
        smollm2_engine.bench(n_prompt=0, n_gen=8, repetitions=1, depth=smollm2_engine.n_ctx)


@pytest.mark.parametrize("n_ctx", [64, 300])
def test_a_context_that_is_not_a_multiple_of_256_fills_to_its_end(smollm2_path, n_ctx):
    """llama.cpp pads a context to 256 cells; llama-cpp-python's token record holds what was asked.
    A reply that runs to the end of the context stops there (it used to raise IndexError at the
    asked size, below llama.cpp's padded one)."""
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import LoadSettings

    with Engine.load(smollm2_path, LoadSettings(n_ctx=n_ctx, **PINNED_LOAD)) as engine:
        assert engine.n_ctx == n_ctx
        prompt = "1, 2, 3, 4, 5, 6, 7, 8,"  # counting on, with no end of its own before the context's
        text, done = collect(engine.stream_completion(prompt, Sampling(temperature=0.0, repeat_penalty=1.0)))
        assert done.stats.stop_reason == "context" and done.stats.context_tokens == n_ctx
        assert text
        # Prompt lookup writes drafts ahead of the last token: it must stop at the same end.
        lookup = Sampling(temperature=0.0, repeat_penalty=1.0, prompt_lookup=True)
        _, done = collect(engine.stream_completion(prompt, lookup))
        assert done.stats.stop_reason == "context" and done.stats.context_tokens <= n_ctx


def test_completion_with_the_base_gemma_model(gemma_path):
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import LoadSettings

    with Engine.load(gemma_path, LoadSettings(n_ctx=512, **PINNED_LOAD)) as engine:
        assert not engine.has_chat_template
        text, done = collect(
            engine.stream_completion("English: Good morning.\nFrench:", Sampling(temperature=0.0, max_tokens=8))
        )
    assert "Bonjour" in text or "bonjour" in text
    assert done.stats.generated_tokens >= 1


def test_a_second_reply_while_one_streams_is_refused(smollm2_engine):
    from llamadesk.app.core.errors import LlamadeskError

    first = smollm2_engine.stream_chat(ask("Count to ten."), Sampling(temperature=0.0, max_tokens=5))
    next(first)
    with pytest.raises(LlamadeskError, match="busy"):
        next(smollm2_engine.stream_chat(ask("Hello"), GREEDY))
    collect_rest = list(first)
    assert isinstance(collect_rest[-1], GenerationDone)


def test_the_conversation_just_counted_is_not_templated_again(smollm2_engine, monkeypatch):
    # The UI counts a conversation's tokens to fit it into the context, then streams it.
    renders = []
    template = smollm2_engine._chat_template
    render = template.render

    def counting_render(messages, *args, **kwargs):
        renders.append(messages)
        return render(messages, *args, **kwargs)

    monkeypatch.setattr(template, "render", counting_render)
    messages = ask("Name a river in France.")
    first = smollm2_engine.chat_prompt_tokens(messages)
    first.append(0)  # callers own what they get back
    again = smollm2_engine.chat_prompt_tokens(messages)
    assert len(renders) == 1 and again == first[:-1]
    messages[-1]["content"] = "Name a river in Spain."  # the same list, changed: templated again
    changed = smollm2_engine.chat_prompt_tokens(messages)
    assert len(renders) == 2 and changed != again
    _, done = collect(smollm2_engine.stream_chat(messages, Sampling(temperature=0.0, max_tokens=3)))
    assert len(renders) == 2 and done.stats.prompt_tokens == len(changed)


def test_token_logprobs_are_reported_only_when_asked(smollm2_engine):
    from llamadesk.app.engine.types import GenerationDone, Sampling, TextPiece

    prompt = smollm2_engine.tokenize("The capital of France is", add_bos=True)
    greedy = Sampling(temperature=0.0, top_k=1, seed=0, max_tokens=8)
    plain = [e for e in smollm2_engine.stream_tokens(prompt, greedy) if isinstance(e, TextPiece)]
    assert plain and all(p.logprob is None for p in plain)
    events = list(smollm2_engine.stream_tokens(prompt, Sampling(**{**greedy.__dict__, "logprobs": True})))
    pieces = [e for e in events if isinstance(e, TextPiece)]
    [done] = [e for e in events if isinstance(e, GenerationDone)]
    assert "".join(p.text for p in pieces) == "".join(p.text for p in plain), "asking changes nothing else"
    assert all(p.logprob is not None and p.logprob <= 0 for p in pieces)
    assert sum(p.tokens for p in pieces) <= done.stats.generated_tokens
    assert any(p.logprob > -0.7 for p in pieces), "a greedy continuation has some likely tokens"


def test_token_logprob_matches_a_float64_log_softmax(smollm2_engine):
    """The float32 log-softmax of the confidence path agrees with float64 to well within 1e-4."""
    import llama_cpp
    import numpy as np

    from llamadesk.app.engine.token_sampler import token_logprob
    from llamadesk.app.engine.types import Sampling

    prompt = smollm2_engine.tokenize("The capital of France is", add_bos=True)
    list(smollm2_engine.stream_tokens(prompt, Sampling(temperature=0.0, seed=0, max_tokens=1)))
    llama = smollm2_engine._llama
    n_vocab = llama.n_vocab()
    row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llama.ctx, -1), shape=(n_vocab,)).astype(np.float64)
    reference = row - row.max() - np.log(np.exp(row - row.max()).sum())
    for token in (int(row.argmax()), int(row.argmin()), 0, n_vocab - 1, n_vocab // 2):
        assert abs(token_logprob(llama.ctx, -1, n_vocab, token) - reference[token]) < 1e-4
    assert np.exp(reference).sum() == pytest.approx(1.0)


def test_cpu_load_is_watched_only_when_the_thread_count_is_left_to_the_machine(smollm2_path, monkeypatch):
    from llamadesk.app.engine import llama_engine
    from llamadesk.app.engine.types import LoadSettings

    asked: list[bool] = []
    real = llama_engine.machine_facts

    def recording(probe=None, measure_busy=False):
        asked.append(measure_busy)
        return real(probe, measure_busy)

    monkeypatch.setattr(llama_engine, "machine_facts", recording)
    # The 0.2 s sample of the CPUs only chooses the thread count, so a given count skips it.
    with llama_engine.Engine.load(smollm2_path, LoadSettings(n_ctx=256, n_threads=1)) as pinned:
        assert pinned.settings.n_threads == 1
    with llama_engine.Engine.load(smollm2_path, LoadSettings(n_ctx=256)) as fitted:
        assert fitted.settings.n_threads >= 1
    assert asked == [False, True]


@pytest.mark.parametrize("flash_attn", [False, True], ids=["flash-attention-off", "flash-attention-on"])
def test_the_same_seeded_request_twice_gets_the_same_reply(smollm2_path, flash_attn):
    """The second request finds its prompt in the cache and decodes only the last token again.

    llama.cpp rounds a token decoded in a batch differently from one decoded alone, so the first
    request decodes its last prompt token alone too (token_loop.decode_prompt); otherwise a sampled
    reply can part at the first near tie. The prompt is long enough (over 64 tokens) for llama.cpp
    to take its batched attention paths with flash attention on as well as off.
    """
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import LoadSettings

    load = LoadSettings(n_ctx=1024, **{**PINNED_LOAD, "flash_attn": flash_attn})
    system = "You are a poet. " + " ".join(f"Rule {i}: write about the sea, the wind and the light." for i in range(8))
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Write a short poem."}]
    sampling = Sampling(temperature=1.0, top_p=1.0, seed=1234, max_tokens=40)
    with Engine.load(smollm2_path, load) as engine:
        assert len(engine.chat_prompt_tokens(messages)) > 64

        def reply() -> tuple[str, int]:
            events = list(engine.stream_chat(messages, sampling))
            return "".join(e.text for e in events if isinstance(e, TextPiece)), events[-1].stats.cached_prompt_tokens

        (first, cached_first), (second, cached_second) = reply(), reply()
    assert cached_first == 0 and cached_second > 64  # the second really came from the cache
    assert first == second and len(first) > 20


def test_stats_of_a_reply_stopped_before_its_first_token_count_only_what_was_read():
    # "prompt 1354 tokens ... 372.5 tok/s; first token 3635 ms" after Ctrl-C: 512 tokens had been read.
    from llamadesk.app.commands.chat import format_stats
    from llamadesk.app.engine.llama_engine import _stats

    stats = _stats(
        1354,
        0,
        0,
        started=0.0,
        first_token_at=None,
        finished=4.0,
        context_tokens=512,
        n_ctx=8192,
        reason="stopped",
        ended_on_eog=False,
    )
    assert stats.prompt_tokens_per_second == 128.0
    assert "no first token" in format_stats(stats) and "first token 4000" not in format_stats(stats)
