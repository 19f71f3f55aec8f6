"""Read .safetensors files by memory-mapping them: nothing is loaded until a tensor is written.

The format is a little-endian u64 header length, a JSON header, then raw tensor bytes. It is
simple enough that reading it here (rather than with the `safetensors` package, which is not a
llamadesk dependency) keeps the runtime free of it, and lets every inconsistency in a truncated
or damaged file become one clear message.
"""

from __future__ import annotations

import json
import mmap
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from llamadesk.app.core.errors import BadInputError
from llamadesk.convert.tensor_source import NUMPY_DTYPES, TensorSource

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the format's own limit; anything bigger is not a header


def _damaged(path: Path, why: str) -> BadInputError:
    return BadInputError(f"{path}: {why}; the file is damaged or incomplete (download it again)")


def _map(path: Path) -> mmap.mmap:
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def release_pages(mapped: mmap.mmap, offset: int, length: int) -> None:
    """Drop the resident pages of a read-only file map (they are re-read from disk if touched)."""
    if not hasattr(mmap, "MADV_DONTNEED"):
        return  # not on this platform; the OS reclaims clean file pages under pressure anyway
    start = offset - offset % mmap.PAGESIZE
    end = min(offset + length, len(mapped))
    if end > start:
        mapped.madvise(mmap.MADV_DONTNEED, start, end - start)


def read_safetensors(path: Path) -> list[TensorSource]:
    """The tensors of one .safetensors file, each read lazily from a shared read-only memory map."""
    size = path.stat().st_size
    if size < 8:
        raise _damaged(path, "too short to be a safetensors file")
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
            raise _damaged(path, f"its header claims {header_len} bytes but the file has {size}")
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _damaged(path, "its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise _damaged(path, "its header is not a JSON object")
    data_start = 8 + header_len
    mapped: list[mmap.mmap] = []  # opened on first read, shared by all tensors of the file

    def reader(offset: int, count: int, dtype: np.dtype, shape: tuple[int, ...]) -> Callable[[], np.ndarray]:
        def read() -> np.ndarray:
            if not mapped:
                mapped.append(_map(path))
            return np.frombuffer(mapped[0], dtype=dtype, count=count, offset=offset).reshape(shape)

        return read

    def releaser(offset: int, length: int) -> Callable[[float], None]:
        def release(fraction: float = 1.0) -> None:
            if mapped:
                release_pages(mapped[0], offset, int(length * fraction))

        return release

    tensors = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype_name, shape, (begin, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise _damaged(path, f"tensor {name} has a malformed header entry") from None
        if dtype_name not in NUMPY_DTYPES:
            raise BadInputError(
                f"{path}: tensor {name} is {dtype_name}; llamadesk converts F32, F16 and BF16 checkpoints"
            )
        dtype = NUMPY_DTYPES[dtype_name]
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * dtype.itemsize or begin < 0:
            raise _damaged(path, f"tensor {name} has shape {list(shape)} but {end - begin} bytes")
        if data_start + end > size:
            raise _damaged(path, f"tensor {name} ends at byte {data_start + end} but the file has {size}")
        tensors.append(
            TensorSource(
                name,
                shape,
                dtype_name,
                reader(data_start + begin, count, dtype, shape),
                releaser(data_start + begin, end - begin),
            )
        )
    return tensors
