"""A one-shot reply's context, sized by its prompt's tokens once llama.cpp has loaded the vocabulary.

`chat PROMPT` sizes its context for its one reply (fitted_settings: context_ceiling). Before the
model loads only a bound is known, the rendered prompt's bytes (every token covers one byte or
more), which puts a 38-token chat prompt and a 128-token reply in 512 cells. The exact count needs
the vocabulary, and llama_cpp.Llama() loads the model and makes its context in one call; loading
the vocabulary alone first would cost 60 ms (SmolLM2) to 340 ms (Gemma 3's 262k tokens). So the
context llama_cpp.Llama() makes is sized in between, from the model it has just loaded.

Why the cells matter: without flash attention llama.cpp stores the V cache transposed, one row per
dimension as long as the whole context, and each token reads a strided slice of every row. The
same reply generated at 0.964 of llama-bench in 512 cells and 0.988 in 256, the size llama-bench
gives itself (bench/RESULTS.md "chat path").
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import llama_cpp._internals as internals


@contextlib.contextmanager
def context_sized_by(cells_for: Callable[[internals.LlamaModel], int]) -> Iterator[list[int]]:
    """While llama_cpp.Llama() runs on this thread inside the block, the context it makes holds at
    most `cells_for(model)` cells, `model` being the one it has just loaded; never more than asked.

    Yields a list that gets the cells the context was made with (empty if none was made; the size
    asked for when `cells_for` failed, since sizing is a saving, not a need). llama_cpp.Llama()
    makes its context through the module attribute swapped here; callers hold the engine's load
    lock, and a context made on another thread meanwhile is left alone.
    """
    made: list[int] = []
    loader = threading.get_ident()
    original = internals.LlamaContext

    def sized_context(*, model: internals.LlamaModel, params, verbose: bool = True) -> internals.LlamaContext:
        if threading.get_ident() == loader and not made:
            try:
                wanted = cells_for(model)
            except Exception:  # noqa: BLE001 - any failure keeps the bound the load was asked for
                wanted = params.n_ctx
            cells = max(1, min(params.n_ctx, wanted))
            params.n_ctx = cells
            params.n_batch = min(params.n_batch, cells)
            params.n_ubatch = min(params.n_ubatch, cells)
            made.append(cells)
        return original(model=model, params=params, verbose=verbose)

    internals.LlamaContext = sized_context  # type: ignore[assignment,misc]
    try:
        yield made
    finally:
        internals.LlamaContext = original  # type: ignore[misc]
