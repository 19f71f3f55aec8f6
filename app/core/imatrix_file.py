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
from gguf.constants import GGMLQuantizationType

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.gguf_header import (
    GGUFFormatError,
    GGUFHeader,
    StringArray,
    TensorInfo,
    read_gguf_header,
    shown,
)
from llamadesk.app.core.gguf_requirements import INTEGER_TYPES

SUMS_SUFFIX = ".in_sum2"
COUNTS_SUFFIX = ".counts"
RECOMPUTE = "compute one with `llamadesk imatrix`"
# An entry holds one value per input column of a weight, times its experts. The widest are the
# expert FFNs of the largest MoE models (Kimi K2: 7,168 columns x 384 experts, 2.75 million), and
# there all entries together reach hundreds of millions (DeepSeek V3/R1: 247 million, the 987 MB
# matrices published for it; Kimi K2: about 380 million). A claim past these limits is a damaged
# file, refused before its values are read (a sparse file claiming 500 million values in one entry
# took 7.85 GB).
MAX_ENTRY_VALUES = 16 * 1024**2
MAX_TOTAL_VALUES = 1024 * 1024**2
MAX_LEGACY_BYTES = MAX_TOTAL_VALUES * 4 + 64 * 1024**2  # the values, plus names and counts


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


def _damaged(path: Path, reason: str) -> BadInputError:
    return BadInputError(f"{path} is not a valid importance matrix file: {reason}; {RECOMPUTE}")


def _check_size(path: Path, name: str, n_values: int, total: int) -> None:
    """Refuse an entry wider than any model's matrix before its values are read."""
    if n_values > MAX_ENTRY_VALUES:
        raise _damaged(path, f"entry {shown(name)} claims {n_values:,} values; the widest models need a few million")
    if total > MAX_TOTAL_VALUES:
        raise _damaged(path, f"its entries claim more than {MAX_TOTAL_VALUES:,} values in all")


def _read_gguf(path: Path) -> ImportanceMatrix:
    # gguf's GGUFReader trusts the file (a cut one ended in a reshape error, a huge tensor count in
    # an IndexError); the model header reader checks every length and offset first.
    try:
        header = read_gguf_header(path)
    except GGUFFormatError as err:
        raise _damaged(path, str(err)) from None
    tensors = entry_tensors(path, header)
    matrix = ImportanceMatrix(datasets=_datasets(path, header), chunk_count=_chunk_count(path, header))
    for name, sums_info in tensors.items():
        if not name.endswith(SUMS_SUFFIX):
            continue
        weight = name.removesuffix(SUMS_SUFFIX)
        counts_info = tensors.get(weight + COUNTS_SUFFIX)
        if counts_info is None or counts_info.n_elements == 0 or sums_info.n_elements % counts_info.n_elements:
            raise BadInputError(f"{path}: importance matrix entry {weight} has no matching counts; recompute it")
        sums, counts = _f32_values(path, sums_info), _f32_values(path, counts_info)
        matrix.values[weight] = _normalise(sums, np.rint(counts))
    return matrix


def entry_tensors(path: Path, header: GGUFHeader) -> dict[str, TensorInfo]:
    """The matrix's NAME.in_sum2 and NAME.counts tensors by name, each checked (F32, no wider than
    the largest models' entries) before a value is read."""
    tensors = {t.name: t for t in header.tensors if t.name.endswith((SUMS_SUFFIX, COUNTS_SUFFIX))}
    total = 0
    for tensor in tensors.values():
        total += tensor.n_elements
        _check_size(path, tensor.name, tensor.n_elements, total)
        if tensor.ggml_type != GGMLQuantizationType.F32:
            raise _damaged(path, f"tensor {shown(tensor.name)} is {tensor.ggml_type.name}, not F32")
    return tensors


def _f32_values(path: Path, tensor: TensorInfo) -> np.ndarray:
    # Only this tensor's bytes are read (the header reader checked they are inside the file).
    return np.fromfile(path, dtype="<f4", count=tensor.n_elements, offset=tensor.data_offset).astype(np.float32)


def _datasets(path: Path, header: GGUFHeader) -> list[str]:
    value = header.metadata.get("imatrix.datasets")
    if value is None:
        return []
    if isinstance(value, StringArray):  # decoded with errors="replace": a name is only shown
        return value.decode()
    if isinstance(value, str):
        return [value]
    raise _damaged(path, f"imatrix.datasets is {header.value_types['imatrix.datasets'].with_article}, not text")


def _chunk_count(path: Path, header: GGUFHeader) -> int:
    if "imatrix.chunk_count" not in header.metadata:
        return 0
    vtype = header.value_types["imatrix.chunk_count"]
    if vtype.kind not in INTEGER_TYPES:
        raise _damaged(path, f"imatrix.chunk_count is {vtype.with_article}, not a whole number")
    return int(header.metadata["imatrix.chunk_count"])


def _read_legacy(path: Path) -> ImportanceMatrix:
    if path.stat().st_size > MAX_LEGACY_BYTES:
        raise _damaged(path, f"it is larger than {MAX_LEGACY_BYTES // 1024**2} MiB, more than any model's matrix")
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
    total = 0
    for i in range(n_entries):
        (name_len,) = take("<i")
        if name_len < 0:  # struct read "<-5s" as a bad format: an internal error
            raise _damaged(path, f"entry #{i}'s name has a length of {name_len}")
        name = take(f"<{name_len}s")[0].decode("utf-8", errors="replace")
        ncall, nval = take("<ii")
        if nval < 1:
            raise BadInputError(f"{path}: importance matrix entry {name} is empty; recompute it")
        total += nval
        _check_size(path, name, nval, total)
        values_at = offset
        take(f"<{nval * 4}x")  # first: the values must be in the file before numpy reads them
        sums = np.frombuffer(data, dtype="<f4", count=nval, offset=values_at).astype(np.float32)
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
