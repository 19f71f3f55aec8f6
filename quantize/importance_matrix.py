"""`llamadesk imatrix`: an importance matrix from a text, in llama-imatrix's GGUF format.

The low-bit types (IQ1/IQ2/IQ3_XXS, Q2_K_S) spend their few bits where the model's inputs are
large: for each weight matrix, the mean squared input activation of each column, measured while
the model reads representative text. The engine collects the activations
(app/engine/activations.py); this module writes them as llama-imatrix does (tensors NAME.in_sum2
and NAME.counts, metadata imatrix.datasets / chunk_count / chunk_size), so the file works with
both `llamadesk quantize --imatrix` and llama.cpp's llama-quantize.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from llamadesk.app.core.atomic_file import atomic_output
from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.gguf_file import inspect_gguf
from llamadesk.app.core.imatrix_file import COUNTS_SUFFIX, SUMS_SUFFIX
from llamadesk.app.core.value_ranges import THREADS
from llamadesk.quantize.evaluation import default_chunk_size

if TYPE_CHECKING:
    from llamadesk.app.engine.activations import ActivationStats


def compute_imatrix(
    model: Path,
    text_file: Path,
    output: Path,
    ctx: int | None = None,
    threads: int | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Run `model` over the text and write its importance matrix to `output` (atomically).

    `ctx`: tokens per chunk; None for evaluation.default_chunk_size's."""
    from gguf import GGUFWriter

    from llamadesk.app.core.machine import machine_facts
    from llamadesk.app.engine.activations import collect_activations

    summary = inspect_gguf(model)  # a bad file is refused before llama.cpp sees it
    trained = summary.context_length
    if trained and trained < 16:
        raise BadInputError(
            f"{summary.path.name} was trained for a context of {trained} tokens; an importance matrix needs "
            "chunks of at least 16"
        )
    if ctx is None:
        ctx = default_chunk_size(summary)
    if ctx < 16:
        raise BadInputError(f"--ctx must be at least 16 tokens, not {ctx}")
    # llama.cpp allocates the whole context up front: --ctx 1000000000 took the machine's memory
    # until the kernel killed the process. Past the trained context a chunk says nothing anyway.
    if trained and ctx > trained:
        raise BadInputError(
            f"--ctx {ctx}: chunks for {summary.path.name} are 16 to {trained} tokens, the context it was "
            "trained for (512 is llama-imatrix's)"
        )
    # None is "choose"; 0 is refused, never taken for the default.
    n_threads = machine_facts().physical_cores if threads is None else THREADS.check(threads, "--threads")
    if not text_file.is_file():
        what = "not a regular file" if os.path.lexists(text_file) else "no such text file"
        raise BadInputError(f"{text_file}: {what}; give a plain UTF-8 text")
    try:
        text = text_file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise BadInputError(f"{text_file} is not UTF-8 text") from err
    refuse_an_input_as_output(output, model=model, text=text_file)
    with atomic_output(output, force) as tmp:
        stats = collect_activations(model, text, ctx, n_threads, progress)
        check_finite(stats, model)
        writer = GGUFWriter(tmp, arch="imatrix")
        writer.add_type("imatrix")
        writer.add_array("imatrix.datasets", [text_file.name])
        writer.add_uint32("imatrix.chunk_count", stats.chunks)
        writer.add_uint32("imatrix.chunk_size", stats.chunk_size)
        for name in sorted(stats.sums):
            sums = stats.sums[name].astype(np.float32)
            n_mat = stats.matrices[name]
            writer.add_tensor(name + SUMS_SUFFIX, sums.reshape(n_mat, -1))
            writer.add_tensor(name + COUNTS_SUFFIX, np.full((n_mat, 1), stats.counts[name], dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return output


def refuse_an_input_as_output(output: Path, **inputs: Path) -> None:
    """-o naming the model or the text (also through a link) is refused even with --force, as
    quantize does: the refusal said "pass --force", and --force replaced the model with the matrix."""
    for role, path in inputs.items():
        if output.exists() and path.exists() and os.path.samefile(output, path):
            raise BadInputError(f"the output {output} is the {role}; choose another -o")


def check_finite(stats: ActivationStats, model: Path) -> None:
    """A model whose activations are not numbers (NaN weights) gives a matrix quantize refuses with
    "recompute it", which cannot help: say what is wrong before writing it."""
    for name, sums in stats.sums.items():
        if not np.isfinite(sums).all():
            raise BadInputError(
                f"{model}: the inputs of {name} are not numbers (NaN or infinite) on this text; "
                "the model file is damaged, download or convert it again"
            )
