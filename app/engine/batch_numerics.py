"""How much a sequence's logits move with what else is in its batch, and with the cache's number type.

llama.cpp's CPU kernels take other paths for a token decoded beside others (matrix-matrix instead
of matrix-vector products, flash attention over several queries) and sum in another order, so
the same sequence gets slightly different logits alone and in company; a greedy reply flips
where two tokens were nearly tied. This measures that movement directly: one prompt and a few
following tokens decoded alone, then again beside other sequences, under each attention kernel
and cache type, every run compared with the most exact one (f32 cache, no flash attention, alone).
bench/batch_numerics.py reports it; translate --parallel's chrF spread is its visible effect.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import numpy as np

from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.engine.llama_log import use_default_log
from llamadesk.app.engine.logits_row import logits_row


@dataclass(frozen=True)
class LogitRuns:
    """Logits (steps x vocabulary) of one sequence decoded alone and beside `n_others` others."""

    alone: np.ndarray
    beside: np.ndarray


def logits_alone_and_beside(
    model_path: Path,
    prompt_text: str,
    *,
    flash_attn: bool,
    kv_type: int,
    n_others: int = 3,
    n_follow: int = 8,
    n_threads: int = 1,
    seed: int = 0,
    repack: bool = True,
) -> LogitRuns:
    """Decode `prompt_text` then `n_follow` fixed tokens, alone and then with `n_others` random sequences.

    `repack=False` keeps llama.cpp from repacking the weights at load for its CPU's batched
    kernels (its "extra buffer types"); a product then takes the same path for one row as for a few.
    """
    use_default_log()
    model_params = llama_cpp.llama_model_default_params()
    model_params.use_extra_bufts = repack
    model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), model_params)
    if not model:
        raise LlamadeskError(f"llama.cpp could not load {model_path}")
    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch = 2048, 512, 512
    params.n_seq_max = n_others + 1
    params.n_threads = params.n_threads_batch = n_threads
    params.flash_attn_type = (
        llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    )
    params.type_k = params.type_v = kv_type
    params.kv_unified = True
    context = llama_cpp.llama_init_from_model(model, params)
    if not context:
        llama_cpp.llama_model_free(model)
        raise LlamadeskError("llama.cpp could not create the context")
    batch = llama_cpp.llama_batch_init(512, 0, 1)
    try:
        vocab = llama_cpp.llama_model_get_vocab(model)
        n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        encoded = prompt_text.encode()
        buffer = (llama_cpp.llama_token * 512)()
        n = llama_cpp.llama_tokenize(vocab, encoded, len(encoded), buffer, 512, True, False)
        if n <= 0:
            raise LlamadeskError("the prompt did not tokenize into 1-512 tokens")
        prompt = list(buffer[:n])
        rng = random.Random(seed)
        others = [[rng.randrange(n_vocab) for _ in prompt] for _ in range(n_others)]
        follow = [rng.randrange(n_vocab) for _ in range(n_follow)]
        memory = llama_cpp.llama_get_memory(context)

        def decode(items: list[tuple[int, list[int], int]]) -> np.ndarray:
            """Decode (sequence, tokens, first position) items in one batch; sequence 0's last logits."""
            count, row = 0, 0
            for sequence, tokens, position in items:
                for offset, token in enumerate(tokens):
                    batch.token[count], batch.pos[count] = token, position + offset
                    batch.n_seq_id[count], batch.seq_id[count][0], batch.logits[count] = 1, sequence, 0
                    count += 1
                batch.logits[count - 1] = 1
                if sequence == 0:
                    row = count - 1
            batch.n_tokens = count
            if llama_cpp.llama_decode(context, batch) != 0:
                raise LlamadeskError("llama_decode failed")
            return logits_row(context, row, n_vocab).copy()

        def run(company: int) -> np.ndarray:
            llama_cpp.llama_memory_clear(memory, True)
            rows = [decode([(0, prompt, 0)] + [(s + 1, others[s], 0) for s in range(company)])]
            for step, token in enumerate(follow):
                position = len(prompt) + step
                rows.append(decode([(0, [token], position)] + [(s + 1, [token], position) for s in range(company)]))
            return np.stack(rows)

        return LogitRuns(alone=run(0), beside=run(n_others))
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_free(context)
        llama_cpp.llama_model_free(model)


def kl_divergence(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """KL(reference || other) per row, from raw logits."""

    def log_softmax(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        peak = x.max(axis=-1, keepdims=True)
        return x - peak - np.log(np.exp(x - peak).sum(axis=-1, keepdims=True))

    ref, oth = log_softmax(reference), log_softmax(other)
    return (np.exp(ref) * (ref - oth)).sum(axis=-1)
