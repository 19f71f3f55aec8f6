"""What the quantizer child process is asked to do, in a form that crosses a process boundary.

Kept apart from llama_quantizer.py so the parent can build requests without importing llama_cpp.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# The child prints this, llama_model_quantize's status and its seconds, after each request.
DONE_MARKER = "@@llamadesk-quantize-done"
# ... and this, with llama.cpp's reason, before it when llama.cpp's loader refuses the input.
REFUSED_MARKER = "@@llamadesk-quantize-refused"


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
