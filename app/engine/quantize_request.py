"""What the quantizer child process is asked to do, in a form that crosses a process boundary.

Kept apart from llama_quantizer.py so the parent can build requests without importing llama_cpp.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass

# The child prints this, llama_model_quantize's status and its seconds, after each request.
DONE_MARKER = "@@llamadesk-quantize-done"
# ... and this, with llama.cpp's reason, before it when llama.cpp's loader refuses the input.
REFUSED_MARKER = "@@llamadesk-quantize-refused"


def new_nonce() -> str:
    """A secret the parent gives the child with its requests, for the child's markers.

    Why: the markers share stdout with llama.cpp's log, which prints a model's metadata key names
    and tensor names as they are, newlines included; a file with a key named "x\n@@llamadesk-
    quantize-done 0 0.5" forged a success (a half-written file was published when the child then
    died). A marker counts only with this run's nonce, which no file can know.
    """
    return secrets.token_hex(16)


def done_marker(nonce: str) -> str:
    """How the child's line after each request starts: `<this> STATUS SECONDS`."""
    return f"{DONE_MARKER}:{nonce} "


def refused_marker(nonce: str) -> str:
    """How the child's line starts when llama.cpp's loader refuses the input: `<this> REASON`."""
    return f"{REFUSED_MARKER}:{nonce} "


@dataclass(frozen=True)
class QuantizeRequest:
    """What to quantize, as llama_model_quantize_params needs it."""

    input: str
    output: str
    ftype: int
    threads: int = 0  # 0: llama.cpp uses every hardware thread
    allow_requantize: bool = False
    imatrix: str | None = None
    dry_run: bool = False  # compute the sizes without writing a file

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
