"""Decoding whose result for a token does not depend on what else shares its batch (on the CPU).

llama.cpp's CPU kernels choose their path by the shape of the batch, and each path sums in its
own order, so a token decoded beside others comes out a little different from the same token
decoded alone; greedy decoding flips at near-ties, and `translate --parallel 8` gave another
translation than `--parallel 1` for a third of a document's paragraphs (bench/RESULTS.md
"parallel chrF"). Five things make a token's arithmetic the same alone and in company (measured
on this project's machine: bit-identical logits, sequence after sequence):

- The weights are not repacked at load (llama.cpp's "extra buffer types"): repacked weights have
  a matrix-vector kernel for one row and a matrix-matrix kernel for several, which sum in
  different orders; unrepacked, every product is one dot product per output, whatever the batch.
- llama.cpp's tiled K-quant products are off (`GGML_CPU_TILED_MM=0`; it takes them from 8 rows).
  The variable is read once per process, at the first product: this must run before any decode.
- A sequence never has 64 or more query rows in one step: flash attention's tiled kernel starts
  at 64 (a tile of queries over tiles of cells, rounding by tile). Prompts are read 63 at a time.
- Each sequence has a KV stream of its own (BatchedDecoder's `batch_invariant`): in a cache
  shared by all, a sequence's cells interleave with the others' as they come and go, and
  attention sums over them in cell order.
- Flash attention is on: its kernel computes each query row on its own, cell by cell. Without
  it, attention is two matrix products whose route depends on how many queries a step holds,
  and SmolLM2's translations parted again (9 of 40 paragraphs).

What it does not cover: with more than one thread, llama.cpp splits the attention of a lone
query over 512 or more cells between the threads (another summation order), which a step of
several sequences never does; so runs can part at a near-tie there. And on a GPU none of this
holds (other kernels), so it applies to CPU runs only.

What it costs (llama-batched-bench, gemma3-270m, 1 thread, this machine; bench/RESULTS.md
"parallel chrF"): prompt reading 15-25% slower, generation of one sequence 0-7% slower, of
eight within noise (separate streams attend over their own cells only).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

# Query rows of one sequence per decode step: one fewer than flash attention's tile (GGML_FA_TILE_Q).
UNTILED_ROWS = 63


def disable_tiled_products() -> None:
    """Turn llama.cpp's tiled K-quant products off for this process (before its first decode)."""
    os.environ["GGML_CPU_TILED_MM"] = "0"


@contextlib.contextmanager
def weights_not_repacked() -> Iterator[None]:
    """While llama_cpp.Llama() loads a model inside this block, its weights stay as the file has them.

    llama-cpp-python has no argument for llama.cpp's `use_extra_bufts`; it builds its model
    parameters from llama_model_default_params(), so that function is wrapped for the load.
    Callers hold the engine's load lock (one load at a time swaps it).
    """
    import llama_cpp  # here, not at the top: fitted_settings takes UNTILED_ROWS without loading llama.cpp

    module = llama_cpp.llama_cpp
    original = module.llama_model_default_params

    def unrepacked_params():
        params = original()
        params.use_extra_bufts = False
        return params

    module.llama_model_default_params = unrepacked_params
    try:
        yield
    finally:
        module.llama_model_default_params = original
