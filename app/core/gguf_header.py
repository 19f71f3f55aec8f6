"""A fast, bounds-checked reader for a GGUF file's header: metadata and tensor table.

Why not gguf's GGUFReader: it builds a numpy view for every element of every array, so a file
with a 262k-token vocabulary (Gemma 3) takes seconds to open, and llamadesk reads headers on
every start and every `models` listing. This reader decodes scalars and strings, keeps numeric
arrays as one numpy view each, and leaves string arrays (vocabularies, merges) undecoded until
someone asks for them. gguf's constants still define the format (value and tensor types, sizes).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4
MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8  # name length, n_dims, one dim, type, offset
MIN_KV_BYTES = 8 + 4 + 1  # key length, value type, smallest value

_SCALAR_FORMATS = {
    GGUFValueType.UINT8: "B",
    GGUFValueType.INT8: "b",
    GGUFValueType.UINT16: "H",
    GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I",
    GGUFValueType.INT32: "i",
    GGUFValueType.FLOAT32: "f",
    GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q",
    GGUFValueType.INT64: "q",
    GGUFValueType.FLOAT64: "d",
}
_NUMPY_TYPES = {
    GGUFValueType.UINT8: np.uint8,
    GGUFValueType.INT8: np.int8,
    GGUFValueType.UINT16: np.uint16,
    GGUFValueType.INT16: np.int16,
    GGUFValueType.UINT32: np.uint32,
    GGUFValueType.INT32: np.int32,
    GGUFValueType.FLOAT32: np.float32,
    GGUFValueType.BOOL: np.bool_,
    GGUFValueType.UINT64: np.uint64,
    GGUFValueType.INT64: np.int64,
    GGUFValueType.FLOAT64: np.float64,
}


class GGUFFormatError(ValueError):
    """The bytes do not form a valid GGUF header; the message says where."""


@dataclass(frozen=True)
class StringArray:
    """A metadata array of strings, decoded only on request (vocabularies are large)."""

    count: int
    offset: int
    _buffer: Any

    def decode(self) -> list[str]:
        out, offs, buf = [], self.offset, self._buffer
        for _ in range(self.count):
            (length,) = struct.unpack_from("<Q", buf, offs)
            out.append(bytes(buf[offs + 8 : offs + 8 + length]).decode("utf-8", errors="replace"))
            offs += 8 + length
        return out

    def __len__(self) -> int:
        return self.count


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order: fastest-varying dimension first
    ggml_type: GGMLQuantizationType
    data_offset: int  # absolute offset in the file
    n_elements: int
    n_bytes: int


@dataclass
class GGUFHeader:
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    alignment: int
    data_offset: int
    file_size: int


class _Cursor:
    def __init__(self, buf: Any, size: int):
        self.buf, self.size, self.offs = buf, size, 0

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.offs + n > self.size:
            raise GGUFFormatError(f"it is truncated: the file ends inside {what} (byte {self.offs} of {self.size})")

    def unpack(self, fmt: str, what: str) -> Any:
        n = struct.calcsize("<" + fmt)
        self.need(n, what)
        value = struct.unpack_from("<" + fmt, self.buf, self.offs)
        self.offs += n
        return value[0] if len(value) == 1 else value

    def string(self, what: str) -> str:
        length = self.unpack("Q", what)
        self.need(length, what)
        raw = bytes(self.buf[self.offs : self.offs + length])
        self.offs += length
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise GGUFFormatError(f"{what} is not valid UTF-8") from err

    def value_type(self, what: str) -> GGUFValueType:
        raw = self.unpack("I", what)
        try:
            return GGUFValueType(raw)
        except ValueError as err:
            raise GGUFFormatError(f"{what} has unknown value type {raw}") from err

    def value(self, vtype: GGUFValueType, what: str) -> Any:
        if vtype == GGUFValueType.STRING:
            return self.string(what)
        if vtype == GGUFValueType.ARRAY:
            return self.array(what)
        return self.unpack(_SCALAR_FORMATS[vtype], what)

    def array(self, what: str) -> Any:
        item_type = self.value_type(what)
        count = self.unpack("Q", what)
        if item_type == GGUFValueType.STRING:
            start = self.offs
            for _ in range(count):  # skip, checking each length against the file
                length = self.unpack("Q", what)
                self.need(length, what)
                self.offs += length
            return StringArray(count, start, self.buf)
        if item_type == GGUFValueType.ARRAY:
            return [self.array(what) for _ in range(count)]
        dtype = np.dtype(_NUMPY_TYPES[item_type]).newbyteorder("<")
        self.need(count * dtype.itemsize, what)
        values = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.offs)
        self.offs += count * dtype.itemsize
        return values


def _read(buf: Any, size: int) -> GGUFHeader:
    cur = _Cursor(buf, size)
    cur.need(4, "the magic number")
    if bytes(buf[0:4]) != GGUF_MAGIC:
        raise GGUFFormatError("it does not start with 'GGUF'")
    cur.offs = 4
    version = cur.unpack("I", "the version")
    if version not in SUPPORTED_VERSIONS:
        raise GGUFFormatError(f"GGUF version {version} is not supported (only 2 and 3)")
    n_tensors, n_kv = cur.unpack("QQ", "the counts")
    # Each entry takes some bytes; counts the file cannot hold mean a damaged header.
    if n_tensors * MIN_TENSOR_INFO_BYTES + n_kv * MIN_KV_BYTES > size:
        raise GGUFFormatError(
            f"its header claims {n_tensors} tensors and {n_kv} keys, "
            f"more than its {size} bytes can hold (truncated or damaged)"
        )
    metadata: dict[str, Any] = {}
    for i in range(n_kv):
        key = cur.string(f"metadata key #{i}")
        metadata[key] = cur.value(cur.value_type(f"metadata {key}"), f"metadata {key}")
    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT))
    if alignment <= 0 or alignment & (alignment - 1):
        raise GGUFFormatError(f"general.alignment {alignment} is not a power of two")
    infos = []
    for i in range(n_tensors):
        name = cur.string(f"tensor #{i}'s name")
        n_dims = cur.unpack("I", f"tensor {name}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise GGUFFormatError(f"tensor {name} has {n_dims} dimensions")
        shape = tuple(cur.unpack("Q", f"tensor {name}") for _ in range(n_dims))
        raw_type, rel_offset = cur.unpack("IQ", f"tensor {name}")
        infos.append((name, shape, raw_type, rel_offset))
    data_offset = -(-cur.offs // alignment) * alignment
    tensors = []
    seen = set()
    for name, shape, raw_type, rel_offset in infos:
        if name in seen:
            raise GGUFFormatError(f"tensor {name} appears twice")
        seen.add(name)
        try:
            ggml_type = GGMLQuantizationType(raw_type)
            block, type_size = GGML_QUANT_SIZES[ggml_type]
        except (ValueError, KeyError) as err:
            raise GGUFFormatError(f"tensor {name} has unknown type {raw_type}") from err
        n_elements = int(np.prod(shape, dtype=object)) if shape else 1
        if shape[0] % block:
            raise GGUFFormatError(f"tensor {name}'s rows ({shape[0]}) are not whole {ggml_type.name} blocks")
        n_bytes = n_elements // block * type_size
        start = data_offset + rel_offset
        if rel_offset % alignment:
            raise GGUFFormatError(f"tensor {name} is not aligned to {alignment} bytes")
        if start + n_bytes > size:
            raise GGUFFormatError(
                f"tensor {name} ends at byte {start + n_bytes} but the file has only {size} (truncated?)"
            )
        tensors.append(TensorInfo(name, shape, ggml_type, start, n_elements, n_bytes))
    return GGUFHeader(version, metadata, tensors, alignment, data_offset, size)


def read_gguf_header(path: Path) -> GGUFHeader:
    """Parse and check a GGUF file's header; raises GGUFFormatError (a ValueError) when invalid.

    The file is memory-mapped, so only the header's pages are read; numeric arrays and string
    arrays in the result stay valid while the header object is alive.
    """
    with path.open("rb") as handle:
        size = path.stat().st_size
        if size < 24:
            raise GGUFFormatError(f"it is only {size} bytes long")
        buf = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    return _read(memoryview(buf), size)
