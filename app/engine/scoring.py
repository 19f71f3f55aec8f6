"""Scoring text with a model: the logits at the scored positions, for perplexity and KL divergence.

Generation needs logits only for the last token; evaluation needs them for every scored position,
so this loads its own llama.cpp context and asks for exactly those outputs, as llama-perplexity
does (a chunk's logits at every position, n_ctx x vocabulary floats, were 512 MiB at --ctx 512 for
gemma3's 262k tokens, and were copied). Settings follow llama-perplexity's defaults (f16 KV cache,
micro-batches of 512, flash attention) so the numbers llamadesk reports are comparable with llama.cpp's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import llama_cpp
import numpy as np

from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import BadInputError, Interrupted, LlamadeskError
from llamadesk.app.core.gguf_file import GGUFSummary, inspect_gguf
from llamadesk.app.core.machine import machine_facts
from llamadesk.app.core.value_ranges import THREADS
from llamadesk.app.engine.context_cells import usable_context
from llamadesk.app.engine.fitted_settings import check_weights_fit_in_ram
from llamadesk.app.engine.llama_log import use_default_log
from llamadesk.app.engine.stop_flag import StopFlag

PERPLEXITY_UBATCH = 512  # llama-perplexity's default n_ubatch


def _check_chunk_size(summary: GGUFSummary, n_ctx: int, available_ram: int, shortest: int = 1) -> None:
    """BadInputError for a chunk size the model was not trained for, or whose logits do not fit.

    Scoring keeps the logits of every position of a chunk (n_ctx x vocabulary floats): --ctx
    99999999999 went on allocating until the kernel killed the process (exit 137, nothing said).
    """
    trained = summary.context_length
    if trained and trained < shortest:
        raise BadInputError(
            f"{summary.path.name} was trained for a context of {trained} tokens; scoring needs chunks of at least "
            f"{shortest}, so it cannot score this model"
        )
    if n_ctx < shortest or (trained and n_ctx > trained):
        limit = f"{shortest} to {trained}, the context it was trained for" if trained else f"at least {shortest}"
        raise BadInputError(f"--ctx {n_ctx}: chunks for {summary.path.name} are {limit}")
    logits_bytes = n_ctx * max(summary.n_vocab, 1) * 4
    if available_ram and logits_bytes > available_ram // 2:
        raise BadInputError(
            f"--ctx {n_ctx}: the logits of a chunk need {format_bytes(logits_bytes)}, more than half of the "
            f"{format_bytes(available_ram)} of memory free; use a smaller --ctx (512 is llama-perplexity's)"
        )


class TokenScorer:
    """A model loaded to return the logits of every position of a token sequence."""

    def __init__(self, llama: llama_cpp.Llama, path: Path, stop: StopFlag | None = None):
        self._llama = llama
        self.path = path
        self._closed = False
        self._batch = llama_cpp.llama_batch_init(llama.n_ctx(), 0, 1)
        self._stop = stop
        if stop is not None:  # llama.cpp reads it between graph nodes: a chunk's decode stops mid-way
            stop.install(llama.ctx)

    @classmethod
    def load(
        cls, path: Path | str, n_ctx: int, n_threads: int | None = None, shortest: int = 1, stop: StopFlag | None = None
    ) -> TokenScorer:
        """Load `path` for scoring chunks of up to `n_ctx` tokens (`shortest` is the least its caller can use)."""
        summary = inspect_gguf(path)
        machine = machine_facts()
        _check_chunk_size(summary, n_ctx, machine.available_ram, shortest)
        # As chat refuses it: weights past the free memory only page in and out (eval ran for minutes
        # on a 61 GiB model with 22 GiB free, deaf to Ctrl-C).
        check_weights_fit_in_ram(summary, machine)
        # None is "choose"; 0 is a mistake to refuse, not a request for the default.
        threads = machine.physical_cores if n_threads is None else THREADS.check(n_threads, "--threads")
        use_default_log()
        try:
            llama = llama_cpp.Llama(
                model_path=str(summary.path),
                n_ctx=n_ctx,
                n_batch=n_ctx,
                n_ubatch=min(PERPLEXITY_UBATCH, n_ctx),
                n_threads=threads,
                n_threads_batch=threads,
                n_gpu_layers=0,
                flash_attn=True,
                verbose=False,
            )
        except (ValueError, RuntimeError) as err:
            raise LlamadeskError(f"llama.cpp could not load {summary.path} ({err})") from err
        return cls(llama, summary.path, stop)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            llama_cpp.llama_batch_free(self._batch)
            self._llama.close()

    def __enter__(self) -> TokenScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def n_vocab(self) -> int:
        return self._llama.n_vocab()

    @property
    def adds_bos(self) -> bool:
        """Whether the model's tokenizer starts every text with BOS (llama_vocab_get_add_bos)."""
        return bool(self._llama._model.add_bos_token())

    @property
    def bos_token(self) -> int:
        return int(self._llama._model.token_bos())

    def tokenize(self, text: str) -> list[int]:
        """Tokens of `text` as llama-perplexity makes them: special tokens added, not parsed."""
        return self._llama.tokenize(text.encode("utf-8"), add_bos=True, special=False)

    def scored_logits(self, tokens: Sequence[int], scored: slice) -> np.ndarray:
        """Logits (one row per position in `scored`, n_vocab float32 each) from an empty KV cache.

        Only those positions get an output. The array is a read-only view of llama.cpp's buffer,
        valid until this scorer's next call: copying it would double the largest array eval holds.
        """
        n_ctx = usable_context(self._llama)
        if len(tokens) > n_ctx:
            raise ValueError(f"{len(tokens)} tokens do not fit the scorer's context of {n_ctx}")
        first, stop, step = scored.indices(len(tokens))
        if step != 1 or stop <= first:
            raise ValueError(f"scored positions must be a run of at least one, not {scored}")
        batch = self._batch
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = first <= i < stop
        batch.n_tokens = len(tokens)
        context = self._llama.ctx
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(context), True)
        status = llama_cpp.llama_decode(context, batch)
        if status != 0 and self._stop is not None and self._stop.is_set():
            raise Interrupted("stopped")
        if status != 0:
            raise LlamadeskError(f"llama.cpp could not evaluate a chunk with {self.path} (status {status})")
        rows = np.ctypeslib.as_array(llama_cpp.llama_get_logits(context), shape=(stop - first, self.n_vocab))
        rows.flags.writeable = False
        return rows
