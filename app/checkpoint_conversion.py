"""The one place `llamadesk pull REPO --convert TYPE` hands a downloaded checkpoint to convert/.

Kept apart so wiring llamadesk.convert in (it is built on another branch) is a change to this
file alone.
"""

from __future__ import annotations

from pathlib import Path

from gguf import LlamaFileType

from .errors import BadInputError, LlamadeskError

# The target types a conversion can be asked for: every file type llama.cpp writes.
CONVERT_TYPES = tuple(t.name.removeprefix("MOSTLY_") for t in LlamaFileType if t.name not in ("GUESSED",))


def check_convert_type(quant_type: str) -> str:
    """The canonical spelling of a --convert TYPE; BadInputError for an unknown one."""
    wanted = quant_type.upper()
    if wanted not in CONVERT_TYPES:
        raise BadInputError(f"--convert {quant_type}: unknown type; use one of {', '.join(CONVERT_TYPES)}")
    return wanted


def convert_checkpoint(checkpoint_dir: Path, output: Path, quant_type: str) -> Path:
    """Convert the HF checkpoint in `checkpoint_dir` to a GGUF at `output`, quantized to `quant_type`."""
    # TODO(lead): call llamadesk.convert (and quantize/ for types other than F16/BF16/F32/Q8_0)
    # here once that branch is merged.
    raise LlamadeskError(
        f"the checkpoint is downloaded ({checkpoint_dir}) but this build of llamadesk cannot convert "
        "it yet; convert it with `llamadesk convert` once available"
    )
