"""How many logits rows llama.cpp's CPU output product computes best at once.

A step of a batched decoder asks for one logits row per sequence that samples, and the output
product (hidden state times a vocabulary-sized matrix: 262,144 x 640 for Gemma 3) is most of such
a step on a CPU. For quantized types Q8_0, Q4_0, Q5_0 and IQ4_NL, and rows from two up, llama.cpp
hands that product to its llamafile kernels, which on AVX-512 take the rows four at a time in one
sweep of the matrix, and then sweep the whole matrix once more for whatever is left over: five
rows cost more than eight. Measured on this project's machine (gemma3-270m, Q8_0 output, one
thread, one step's CPU time; bench/RESULTS.md "output tiles"): 4 rows 57 ms, 5 rows 89, 6 rows 97,
7 rows 113, 8 rows 89; 2 and 3 rows 45 and 54, cheaper than 4. So a step that samples six or seven
sequences computes eight rows (the extra ones are thrown away), which changes no sequence's
logits: each row's sums are the same whichever sweep takes it (batch_invariance.py;
tests/test_translate_parallel.py compares whole documents).

Only where that was measured: an AVX-512 CPU build with llamafile, and an output matrix of one of
those types on the CPU. Elsewhere (AVX2's kernels take rows two at a time, ARM's other shapes, GPUs
other kernels) the tile is 1: no padding.
"""

from __future__ import annotations

from collections.abc import Iterable

from gguf import GGMLQuantizationType

from llamadesk.app.core.gguf_header import GGUFHeader

# The types llama.cpp's llamafile kernels multiply on x86 (tinyBLAS_Q0_AVX).
TILED_TYPES = frozenset(
    {GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q5_0, GGMLQuantizationType.IQ4_NL}
)
AVX512_TILE = 4


def output_matrix_type(header: GGUFHeader) -> object:
    """The type of the model's output matrix: output.weight, or the token embedding it is tied to."""
    types = {tensor.name: tensor.ggml_type for tensor in header.tensors}
    return types.get("output.weight", types.get("token_embd.weight"))


def output_row_tile(output_type: object, cpu_features: Iterable[str], output_on_cpu: bool) -> int:
    """Rows the output product takes per sweep on this build, or 1 where padding is not known to pay."""
    features = set(cpu_features)
    if not output_on_cpu or "LLAMAFILE" not in features or "AVX512" not in features:
        return 1
    return AVX512_TILE if output_type in TILED_TYPES else 1


def padded_rows(rows: int, tile: int) -> int:
    """How many logits rows to compute when `rows` are wanted: whole tiles once past the first,
    where at least half a tile is left over.

    The sweep for the rest reads the whole matrix again (from memory) for a few rows; a tile more
    in the first sweep finds the matrix's rows in the CPU's cache. One row left over costs about
    what a whole tile does there, so five rows stay five: the three more would only add the
    filler tokens' own work (bench/RESULTS.md "output tiles": 5 sequences 14% slower padded, 6
    and 7 12% and 23% faster).
    """
    if tile <= 1 or rows <= tile or rows % tile < (tile + 1) // 2:
        return rows
    return -(-rows // tile) * tile
