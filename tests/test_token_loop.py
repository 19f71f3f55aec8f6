"""The engine's lean token loop picks exactly the tokens llama-cpp-python's Llama.generate picks."""

from __future__ import annotations

import itertools

import llama_cpp
import pytest

from llamadesk.app.engine.token_loop import reusable_prefix
from llamadesk.app.engine.types import Sampling, TextPiece

PROMPTS = ["The capital of France is", "Once upon a time, there was a", "The capital of France is a city"]


def reference_tokens(engine, prompt: str, sampling: Sampling, n: int) -> list[int]:
    """What llama-cpp-python's own generate loop picks (the engine's previous path)."""
    llama = engine._llama
    llama.set_seed(sampling.seed)
    vocab = llama_cpp.llama_model_get_vocab(llama._model.model)
    tokens = []
    stream = llama.generate(
        engine.tokenize(prompt),
        temp=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k,
        min_p=sampling.min_p,
        repeat_penalty=sampling.repeat_penalty,
    )
    for token in itertools.islice(stream, n):
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            break
        tokens.append(token)
    stream.close()
    return tokens


def engine_text(engine, prompt: str, sampling: Sampling) -> str:
    return "".join(e.text for e in engine.stream_completion(prompt, sampling) if isinstance(e, TextPiece))


@pytest.mark.parametrize(
    "sampling",
    [
        Sampling(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, seed=0, max_tokens=20),
        Sampling(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1, seed=11, max_tokens=20),
        Sampling(temperature=0.0, repeat_penalty=1.3, seed=0, max_tokens=20),  # penalized_greedy.py, not the chain
    ],
    ids=["greedy", "seeded", "greedy-penalized"],
)
def test_the_engine_says_what_llama_generate_says(smollm2_engine, sampling):
    for prompt in PROMPTS:  # the third reuses the first's cached prefix on both paths
        expected = reference_tokens(smollm2_engine, prompt, sampling, 20)
        text = smollm2_engine._llama.detokenize(expected).decode("utf-8", errors="ignore")
        assert engine_text(smollm2_engine, prompt, sampling) == text


def test_the_penalty_changes_what_greedy_decoding_says(smollm2_engine):
    """So that the greedy-penalized case above compares two paths that apply it."""
    plain = Sampling(temperature=0.0, seed=0, max_tokens=20)
    penalized = Sampling(temperature=0.0, repeat_penalty=1.3, seed=0, max_tokens=20)
    assert any(engine_text(smollm2_engine, p, plain) != engine_text(smollm2_engine, p, penalized) for p in PROMPTS)


def test_the_reusable_prefix_leaves_at_least_one_token_to_decode(smollm2_engine):
    llama = smollm2_engine._llama
    tokens = smollm2_engine.tokenize(PROMPTS[0])
    engine_text(smollm2_engine, PROMPTS[0], Sampling(temperature=0.0, max_tokens=2))
    assert reusable_prefix(llama, tokens) == len(tokens) - 1
    assert reusable_prefix(llama, tokens + [42]) == len(tokens)
    assert reusable_prefix(llama, [tokens[0] + 1, *tokens[1:]]) == 0
