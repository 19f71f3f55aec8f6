"""Read .safetensors files by memory-mapping them: nothing is loaded until a tensor is written.

The format is a little-endian u64 header length, a JSON header, then raw tensor bytes. It is
simple enough that reading it here (rather than with the `safetensors` package, which is not a
llamadesk dependency) keeps the runtime free of it, and lets every inconsistency in a truncated,
damaged or crafted file become one clear message: every header value is checked for its type and
range, every tensor's bytes must lie in the file and match its shape, and no two tensors may share
bytes (the format forbids it), before anything is mapped.
"""

from __future__ import annotations

import math
import mmap
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.json_file import parse_json_object
from llamadesk.app.core.value_ranges import shown
from llamadesk.convert.tensor_source import NUMPY_DTYPES, TensorSource, check_tensor_name

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the format's own limit; anything bigger is not a header
MAX_HEADER_DEPTH = 8  # {name: {"shape": [...]}} is 3 deep
MAX_DIMS = 8  # weights have at most 2


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


def _entry(path: Path, name: str, info: object, room: int) -> tuple[str, tuple[int, ...], int, int]:
    """(dtype, shape, begin, end) of one header entry, each checked for type and range."""
    if not isinstance(info, dict):
        raise _damaged(path, f"tensor {name} has a header entry that is not an object")
    dtype_name, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if type(dtype_name) is not str:
        raise _damaged(path, f"tensor {name} has a dtype that is not a name ({shown(dtype_name)})")
    if type(shape) is not list or len(shape) > MAX_DIMS or any(type(d) is not int or d < 0 for d in shape):
        raise _damaged(path, f"tensor {name} has a shape that is not a list of sizes ({shown(shape)})")
    if not (
        type(offsets) is list
        and len(offsets) == 2
        and all(type(o) is int for o in offsets)
        and 0 <= offsets[0] <= offsets[1]
    ):
        raise _damaged(
            path, f"tensor {name} has data_offsets that are not two increasing byte offsets ({shown(offsets)})"
        )
    begin, end = offsets
    if end > room:
        raise _damaged(path, f"tensor {name} ends at byte {end} of the data but the file holds {room}")
    return dtype_name, tuple(shape), begin, end


def _check_no_overlap(path: Path, spans: list[tuple[int, int, str]]) -> None:
    """The format gives every tensor bytes of its own; two that share bytes mean a damaged or crafted file."""
    previous_end, previous = 0, ""
    for begin, end, name in sorted(spans):
        if begin == end:
            continue  # an empty tensor owns no bytes
        if begin < previous_end:
            raise _damaged(path, f"tensors {previous} and {name} claim the same bytes")
        previous_end, previous = end, name


def read_safetensors(path: Path) -> list[TensorSource]:
    """The tensors of one .safetensors file, each read lazily from a shared read-only memory map."""
    size = path.stat().st_size
    if size < 8:
        raise _damaged(path, "too short to be a safetensors file")
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
            raise _damaged(path, f"its header claims {header_len} bytes but the file has {size}")
        raw = f.read(header_len)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _damaged(path, "its header is not UTF-8 JSON") from None
    header = parse_json_object(text, str(path), "safetensors header", max_depth=MAX_HEADER_DEPTH)
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
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        check_tensor_name(name, path)
        dtype_name, shape, begin, end = _entry(path, name, info, size - data_start)
        if dtype_name not in NUMPY_DTYPES:
            raise BadInputError(
                f"{path}: tensor {name} is {shown(dtype_name)}; llamadesk converts F32, F16 and BF16 checkpoints"
            )
        dtype = NUMPY_DTYPES[dtype_name]
        count = math.prod(shape)  # Python ints: a crafted shape cannot overflow into a match
        if end - begin != count * dtype.itemsize:
            raise _damaged(path, f"tensor {name} has shape {list(shape)} but {end - begin} bytes")
        spans.append((begin, end, name))
        tensors.append(
            TensorSource(
                name,
                shape,
                dtype_name,
                reader(data_start + begin, count, dtype, shape),
                releaser(data_start + begin, end - begin),
            )
        )
    _check_no_overlap(path, spans)
    return tensors
