"""Batched throughput measured as llama-batched-bench measures it, through the BatchedDecoder.

`n_sequences` random prompts of `n_prompt` tokens are decoded in one step (S_PP), then each
sequence generates `n_gen` tokens, one token per sequence per llama_decode (S_TG), with real
greedy sampling and detokenizing per sequence (llama-batched-bench samples nothing).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from llamadesk.app.engine.batched_decoder import BatchedDecoder
from llamadesk.app.engine.types import Sampling


@dataclass(frozen=True)
class BatchedBenchResult:
    n_prompt: int
    n_gen: int
    n_sequences: int
    prompt_tokens_per_second: float  # S_PP: all sequences' prompt tokens over the prompt step
    generated_tokens_per_second: float  # S_TG: all sequences' generated tokens over the generating steps


def measure_batched(decoder: BatchedDecoder, n_prompt: int, n_gen: int, seed: int = 0) -> BatchedBenchResult:
    """Decode `decoder.n_sequences` sequences together once (after a 16-token warm-up, as llama-batched-bench)."""
    rng = random.Random(seed)
    n = decoder.n_sequences
    decoder.generate([rng.randrange(decoder.n_vocab) for _ in range(16)], Sampling(temperature=0.0, max_tokens=1))
    greedy = Sampling(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, seed=0, max_tokens=n_gen)
    prompts = [[rng.randrange(decoder.n_vocab) for _ in range(n_prompt)] for _ in range(n)]
    with decoder.starting_together():
        started = time.perf_counter()
        handles = [decoder.submit(prompt, greedy, ignore_end=True) for prompt in prompts]
    results = [handle.result() for handle in handles]
    ended = time.perf_counter()
    # The prompts' step yields every sequence's first token; the other n_gen - 1 come one step each.
    first = max(result.stats.time_to_first_token for result in results)
    return BatchedBenchResult(
        n_prompt,
        n_gen,
        n,
        prompt_tokens_per_second=n * n_prompt / first,
        generated_tokens_per_second=n * (n_gen - 1) / max(ended - started - first, 1e-9),
    )
