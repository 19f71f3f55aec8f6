"""A checkpoint tensor that is described up front and read only when the writer asks for it.

Every reader (safetensors, PyTorch zip, Meta shards) yields these, so the converter can plan the
whole output (names, shapes, types, size) before touching the weights, and then hold one tensor in
memory at a time while writing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from llamadesk.app.core.errors import BadInputError

# Checkpoint dtypes llamadesk reads, by the names safetensors uses. bfloat16 has no numpy type: it
# is carried as its raw 16 bits (uint16) and widened to float32 with a shift (see to_float32).
NUMPY_DTYPES: dict[str, np.dtype] = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
}


# Real names are dotted paths of a few dozen characters ("model.layers.0.self_attn.q_proj.weight").
MAX_TENSOR_NAME = 512


def check_tensor_name(name: str, source: str | Path) -> None:
    """Refuse a tensor name no checkpoint has: over-long, or with control characters.

    Names appear in error lines and in the GGUF; one with a newline would split a message in two.
    """
    if len(name) > MAX_TENSOR_NAME or not name.isprintable():
        raise BadInputError(f"{source}: a tensor name that is not a weight's name ({name[:60]!r}); the file is damaged")


@dataclass(frozen=True)
class TensorSource:
    """One named tensor of a checkpoint: its shape and dtype now, its values when `read()` runs.

    `read()` returns a little-endian numpy array of NUMPY_DTYPES[dtype] (bf16 as raw uint16 bits);
    it may be a read-only view of a memory map.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    read: Callable[[], np.ndarray]
    # release(fraction): the first `fraction` of the tensor's bytes will not be read again. A
    # memory-mapped reader drops those pages, since mapped file pages count towards the process's
    # resident memory until released (dropping too much is harmless: pages are re-read from disk).
    release: Callable[[float], None] = lambda fraction=1.0: None

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.n_elements * NUMPY_DTYPES[self.dtype].itemsize


def to_float32(values: np.ndarray, dtype: str) -> np.ndarray:
    """The tensor as float32; bf16 is the upper half of a float32, so widening is a 16-bit shift."""
    if dtype == "BF16":
        return (values.astype(np.uint32) << 16).view(np.float32)
    return values.astype(np.float32, copy=False)


def float32_to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 to bf16 bits, rounding to nearest even (as torch does); NaN stays a quiet NaN."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    nan = np.isnan(values)
    rounded = ((bits + (0x7FFF + ((bits >> 16) & 1))) >> 16).astype(np.uint16)
    if nan.any():
        rounded[nan] = 0x7FC0
    return rounded


@cache
def _bf16_to_float16_table() -> np.ndarray:
    """float16 of every bf16 value, indexed by its 16 bits: built by the float32 round trip itself."""
    every_bf16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    with np.errstate(over="ignore"):  # bf16 beyond float16's range becomes inf, as intended
        return to_float32(every_bf16, "BF16").astype(np.float16)


def bf16_bits_to_float16(bits: np.ndarray) -> np.ndarray:
    """bf16 (raw uint16 bits) to float16, bit for bit what widening to float32 and rounding gives.

    A bf16 value has only 65536 possible bit patterns, so the conversion is a table lookup: one
    pass over the tensor instead of a 4-byte widening and a rounding pass (~2.5x faster; bf16 to
    f16 is the bulk of converting today's bf16 checkpoints to --outtype f16).
    """
    return _bf16_to_float16_table()[bits]
