"""What llama.cpp actually allocates when it loads a model, read from its own load log.

llama.cpp reports each buffer it allocates ("CPU_Mapped model buffer size = 92.10 MiB", "CPU KV
buffer size", "CPU compute buffer size", "CPU output buffer size") but exposes no API for the
totals, so the log is captured for the duration of one load. `fit` uses this to check its
estimates against reality.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import llama_cpp

from llamadesk.app.engine.llama_log import log_sent_to

BUFFER_LINE = re.compile(r"(?P<device>\S+)\s+(?P<kind>model|KV|compute|output) buffer size =\s*(?P<mib>[\d.]+) MiB")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Allocation:
    """Bytes llama.cpp allocated for one loaded model and context, by purpose."""

    model_bytes: int
    kv_bytes: int
    compute_bytes: int
    output_bytes: int
    # On CPUs with fast interleaved kernels llama.cpp copies some weights (Q4_0, IQ4_NL, IQ4_XS,
    # Q4_K, Q8_0...) into a "CPU_REPACK" buffer at load and computes from the copy. Those
    # tensors are also counted in the memory-mapped model buffer, but their mapped file pages are
    # not touched again, so the OS may drop them: the copy replaces them rather than adding to them.
    repacked_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        """Memory the loaded model holds: weights once, KV cache, compute and output buffers."""
        return self.model_bytes + self.kv_bytes + self.compute_bytes + self.output_bytes


def parse_allocation(log: str) -> Allocation:
    """Sum the buffer sizes a llama.cpp load log reports, by kind."""
    totals = {"model": 0.0, "KV": 0.0, "compute": 0.0, "output": 0.0, "repack": 0.0}
    for match in BUFFER_LINE.finditer(log):
        repack = match["kind"] == "model" and match["device"].endswith("_REPACK")
        totals["repack" if repack else match["kind"]] += float(match["mib"])
    return Allocation(
        model_bytes=round(totals["model"] * MIB),
        kv_bytes=round(totals["KV"] * MIB),
        compute_bytes=round(totals["compute"] * MIB),
        output_bytes=round(totals["output"] * MIB),
        repacked_bytes=round(totals["repack"] * MIB),
    )


def measure_allocation(path: Path | str, n_ctx: int, n_batch: int = 512, flash_attn: bool = True) -> Allocation:
    """Load `path` on the CPU with this context, read what llama.cpp allocated, and free it again."""
    pieces: list[str] = []
    with log_sent_to(pieces.append):
        llama = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=n_batch,
            n_ubatch=n_batch,
            n_gpu_layers=0,
            flash_attn=flash_attn,
            verbose=False,
        )
        llama.close()
    return parse_allocation("".join(pieces))
