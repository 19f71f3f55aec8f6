"""Reading llama.cpp's quantizer log (src/llama-quant.cpp) into progress, sizes and errors.

llama_model_quantize reports only a status code; everything else it says goes to the log:
`[  12/ 272] blk.0.attn_q.weight - [...], type = f16, converting to q5_0 .. size = ...` per
tensor, `quant size = 98.87 MiB (6.17 BPW)` at the end, `failed to quantize: WHY` on failure.
The patterns are data here, so a llama.cpp that rewords a line breaks one test, not the program.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MIB = 1024 * 1024

TENSOR_LINE = re.compile(r"^\[\s*(?P<index>\d+)/\s*(?P<total>\d+)\]\s+(?P<name>\S+)")
MODEL_SIZE_LINE = re.compile(r"model size\s*=\s*(?P<mib>[\d.]+) MiB")
QUANT_SIZE_LINE = re.compile(r"quant size\s*=\s*(?P<mib>[\d.]+) MiB \((?P<bpw>[\d.]+) BPW\)")
FAILURE_LINE = re.compile(r"failed to quantize: (?P<reason>.*)")
NEEDS_IMATRIX_MARKERS = (
    "requires an imatrix",
    "requires an importance matrix",
    "will require an imatrix",
    "Missing importance matrix",
)
# An importance matrix made for another model: its rows do not match this model's tensors.
IMATRIX_MISMATCH_LINE = re.compile(r"imatrix size \d+ is different from tensor size \d+ for (?P<tensor>\S+)")
# A type with no fallback for a tensor whose rows it cannot hold (llama-quant.cpp).
NO_FALLBACK_LINE = re.compile(r"no tensor type fallback is defined for type (?P<type>\S+)")
FALLBACK_LINE = re.compile(r"(?P<count>\d+) of (?P<total>\d+) tensor\(s\) required fallback")


@dataclass(frozen=True)
class TensorProgress:
    """llama.cpp started on tensor `index` (1-based) of `total`."""

    index: int
    total: int
    name: str


@dataclass
class QuantizeReport:
    """What one run of the quantizer said about itself."""

    tensors_done: int = 0
    tensors_total: int = 0
    input_mib: float | None = None
    output_mib: float | None = None
    output_bits_per_weight: float | None = None
    failure: str | None = None
    refused: str | None = None  # llama.cpp's loader refused the input, for this reason (nothing quantized)
    imatrix_mismatch: str | None = None  # a tensor the importance matrix does not fit
    no_fallback: str | None = None  # the type llama.cpp cannot make for some tensor of this model
    needs_imatrix: bool = False
    fallback_tensors: int = 0
    seconds: float | None = None  # time spent in llama_model_quantize itself
    lines: list[str] = field(default_factory=list)

    @property
    def output_bytes(self) -> int | None:
        """Tensor data size of the output (llama.cpp prints it in MiB with 2 decimals)."""
        return None if self.output_mib is None else round(self.output_mib * MIB)


def read_line(report: QuantizeReport, line: str) -> TensorProgress | None:
    """Fold one log line into `report`; returns the tensor it starts, if it starts one."""
    report.lines.append(line)
    if match := TENSOR_LINE.match(line):
        progress = TensorProgress(int(match["index"]), int(match["total"]), match["name"])
        report.tensors_done, report.tensors_total = progress.index, progress.total
        return progress
    if match := QUANT_SIZE_LINE.search(line):
        report.output_mib = float(match["mib"])
        report.output_bits_per_weight = float(match["bpw"])
    elif match := MODEL_SIZE_LINE.search(line):
        report.input_mib = float(match["mib"])
    elif match := FAILURE_LINE.search(line):
        report.failure = match["reason"].strip()
    elif match := FALLBACK_LINE.search(line):
        report.fallback_tensors = int(match["count"])
    if match := IMATRIX_MISMATCH_LINE.search(line):
        report.imatrix_mismatch = match["tensor"]
    if match := NO_FALLBACK_LINE.search(line):
        report.no_fallback = match["type"]
    if any(marker in line for marker in NEEDS_IMATRIX_MARKERS):
        report.needs_imatrix = True
    return None
