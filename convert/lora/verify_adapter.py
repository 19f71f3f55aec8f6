"""--verify for adapters: llama.cpp's logits with the adapter applied against a numpy reference.

The reference is reference_forward's plain forward pass over the base checkpoint's own tensors with
the adapter folded in by merge.py (W + PEFT's scaling * B·A, from the PEFT files, not the GGUF). So it
checks the GGUF adapter's names, A/B layouts, the Q/K reordering of B and the folded per-module
scaling independently of the code that wrote them. llama.cpp needs the base as a GGUF: it is
converted to f32 in a temporary file first (verification costs a conversion of the base).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.convert.checkpoint import open_checkpoint
from llamadesk.convert.converter import plan_conversion, write_gguf
from llamadesk.convert.lora.adapter_plan import AdapterPlan
from llamadesk.convert.lora.merge import merged_tensors
from llamadesk.convert.verify import LOGITS_SAMPLE, compare_logits

# (base GGUF, adapter GGUF) -> (tokenize(text), logits(tokens)) through llama.cpp, open while the check runs.
Runner = Callable[[Path, Path, Callable[[Callable[[str], list[int]], Callable[[list[int]], np.ndarray]], str]], str]


def base_folder(plan: AdapterPlan) -> Path:
    """The base checkpoint folder the reference reads; BadInputError when the base was only a config or GGUF."""
    folder = plan.base.folder
    if folder is None or not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        raise BadInputError(
            "--verify for an adapter needs the base checkpoint's weights (give --base FOLDER with them)"
        )
    return folder


def verify_adapter(plan: AdapterPlan, written: Path, run_with_adapter: Runner) -> str:
    """Check the written adapter; a one-line summary, or LlamadeskError naming the difference."""
    folder = base_folder(plan)
    reference = open_checkpoint(folder)
    reference.tensors = merged_tensors(reference, [(plan, 1.0)])
    with tempfile.TemporaryDirectory(prefix="llamadesk-verify-") as scratch:
        base_gguf = write_gguf(plan_conversion(folder, "f32"), Path(scratch) / "base-f32.gguf")

        def check(tokenize, logits) -> str:
            tokens = tokenize(LOGITS_SAMPLE)[:48]
            result = compare_logits(reference, tokens, logits, plan.bulk_type)
            if not result.ok:
                raise LlamadeskError(
                    f"verification failed: with {written.name} applied, llama.cpp's logits differ from the "
                    f"reference by {result.relative_rms:.1%} of their spread (RMS; accepted {result.tolerance:.0%}), "
                    f"greedy choice differs at {result.top1_disagreements} clear-cut position(s); "
                    "the file was not kept"
                )
            return (
                f"with the adapter applied, logits within {result.relative_rms:.2%} of the reference's "
                f"(RMS/spread; max |diff| {result.max_abs_diff:.2g})"
            )

        return run_with_adapter(base_gguf, written, check)
