"""Reading llama.cpp importance-matrix files (from llama-imatrix) for `quantize --imatrix`.

llama_model_quantize takes the matrix as per-tensor float arrays, not as a file: reading the file
is the caller's job (llama-quantize does it in C++, common/imatrix-loader.cpp). Both formats
llama-imatrix writes are read: the GGUF one (tensors NAME.in_sum2 and NAME.counts, one count per
expert) and the legacy .dat one. Values are normalised to mean squared activations exactly as
llama-quantize does before handing them over.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llamadesk.app.core.errors import BadInputError

SUMS_SUFFIX = ".in_sum2"
COUNTS_SUFFIX = ".counts"


@dataclass
class ImportanceMatrix:
    """Per weight tensor, the mean squared input activation of each column (per expert)."""

    values: dict[str, np.ndarray] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    chunk_count: int = 0


def _normalise(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """sums / count per expert; an expert never reached gets 1 (every column equally important)."""
    per_expert = sums.reshape(len(counts), -1)
    out = np.ones_like(per_expert, dtype=np.float32)
    reached = counts > 0
    out[reached] = per_expert[reached] / counts[reached, None]
    return out.reshape(-1)


def _read_gguf(path: Path) -> ImportanceMatrix:
    from gguf import GGUFReader

    reader = GGUFReader(path)
    tensors = {t.name: np.asarray(t.data, dtype=np.float32).reshape(-1) for t in reader.tensors}
    matrix = ImportanceMatrix()
    datasets = reader.get_field("imatrix.datasets")
    if datasets is not None:
        matrix.datasets = [str(bytes(datasets.parts[i]), "utf-8") for i in datasets.data]
    chunks = reader.get_field("imatrix.chunk_count")
    if chunks is not None:
        matrix.chunk_count = int(chunks.parts[chunks.data[0]][0])
    for name, sums in tensors.items():
        if not name.endswith(SUMS_SUFFIX):
            continue
        weight = name.removesuffix(SUMS_SUFFIX)
        counts = tensors.get(weight + COUNTS_SUFFIX)
        if counts is None or counts.size == 0 or sums.size % counts.size:
            raise BadInputError(f"{path}: importance matrix entry {weight} has no matching counts; recompute it")
        matrix.values[weight] = _normalise(sums, np.rint(counts))
    return matrix


def _read_legacy(path: Path) -> ImportanceMatrix:
    data = path.read_bytes()
    offset = 0

    def take(fmt: str) -> tuple:
        nonlocal offset
        size = struct.calcsize(fmt)
        if offset + size > len(data):
            raise BadInputError(
                f"{path} is not an importance matrix file (it ends too early); "
                "give a file written by `llamadesk imatrix` or llama-imatrix"
            )
        values = struct.unpack_from(fmt, data, offset)
        offset += size
        return values

    (n_entries,) = take("<i")
    if n_entries < 1:
        raise BadInputError(
            f"{path} is not an importance matrix file; give a file written by `llamadesk imatrix` or llama-imatrix"
        )
    matrix = ImportanceMatrix()
    for _ in range(n_entries):
        (name_len,) = take("<i")
        name = take(f"<{name_len}s")[0].decode("utf-8", errors="replace")
        ncall, nval = take("<ii")
        if nval < 1:
            raise BadInputError(f"{path}: importance matrix entry {name} is empty; recompute it")
        sums = np.frombuffer(data, dtype="<f4", count=nval, offset=offset).astype(np.float32)
        take(f"<{nval * 4}x")
        matrix.values[name] = sums / ncall if ncall > 0 else sums
    if offset + 4 <= len(data):
        (matrix.chunk_count,) = take("<i")
        if offset + 4 <= len(data):
            (dataset_len,) = take("<i")
            if dataset_len > 0 and offset + dataset_len <= len(data):
                matrix.datasets.append(take(f"<{dataset_len}s")[0].decode("utf-8", errors="replace"))
    return matrix


def read_imatrix(path: Path | str) -> ImportanceMatrix:
    """Read and normalise an importance matrix; a missing or malformed file is a BadInputError."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such importance matrix file; compute one with `llamadesk imatrix`")
    with path.open("rb") as handle:
        magic = handle.read(4)
    matrix = _read_gguf(path) if magic == b"GGUF" else _read_legacy(path)
    if not matrix.values:
        raise BadInputError(f"{path} holds no importance matrix entries; recompute it")
    for name, values in matrix.values.items():
        if not np.all(np.isfinite(values)):
            raise BadInputError(f"{path}: entry {name} holds NaN or infinite values; recompute it")
    return matrix
