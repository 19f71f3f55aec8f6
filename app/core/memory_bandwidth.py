"""How fast this machine reads memory, and how much of a model one generated token reads.

Generating one token multiplies every weight matrix by one vector: each weight is read once and
used for a couple of operations, so on a CPU the speed limit is memory bandwidth divided by the
bytes of weights read per token. `llamadesk bench` reports generation as a share of that limit,
which says how much faster any program could go on this machine, whatever its kernels.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from llamadesk.app.core.gguf_header import GGUFHeader

BANDWIDTH_PROBE_BYTES = 256 << 20  # well past any CPU cache, small enough to take ~0.1 s


def weight_bytes_per_token(header: GGUFHeader) -> int:
    """Bytes of tensor data one token's decode reads: every tensor once, but the input embedding only
    for its one row, unless the model has no separate output matrix (the embedding is then the output
    projection too, and read whole)."""
    names = {tensor.name for tensor in header.tensors}
    tied = "output.weight" not in names
    total = 0
    for tensor in header.tensors:
        if tensor.name == "token_embd.weight" and not tied:
            rows = tensor.shape[-1] if len(tensor.shape) > 1 else 1
            total += tensor.n_bytes // max(rows, 1)
        else:
            total += tensor.n_bytes
    return total


def measure_read_bandwidth(n_threads: int, n_bytes: int = BANDWIDTH_PROBE_BYTES, repeats: int = 5) -> float:
    """Bytes per second that `n_threads` threads read together (best of `repeats`), as llama.cpp's threads do.

    Each thread sums its own slice of one large array; numpy releases the GIL while it sums.
    """
    data = np.ones(n_bytes // 8, dtype=np.float64)
    slices = np.array_split(data, max(n_threads, 1))
    best = 0.0
    for _ in range(repeats):
        threads = [threading.Thread(target=np.add.reduce, args=(part,)) for part in slices]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        best = max(best, data.nbytes / (time.perf_counter() - started))
    return best
