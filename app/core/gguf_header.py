"""A fast, bounds-checked reader for a GGUF file's header: metadata and tensor table.

Why not gguf's GGUFReader: it builds a numpy view for every element of every array, so a file
with a 262k-token vocabulary (Gemma 3) takes seconds to open, and llamadesk reads headers on
every start and every `models` listing. This reader decodes scalars and strings, keeps numeric
arrays as one numpy view each, and leaves string arrays (vocabularies, merges) undecoded until
someone asks for them. gguf's constants still define the format (value and tensor types, sizes).

The checks are those of ggml's own reader (ggml/src/gguf.cpp), so a file this reader accepts is
one llama.cpp can parse: every length and count against the bytes left, no arrays of arrays, no
duplicate keys or tensor names, general.alignment a uint32 power of two, tensor dimensions that
are non-negative int64 values whose product fits in int64, known tensor types whose rows are
whole blocks, and tensors packed one after the other at aligned offsets inside the file.
"""

from __future__ import annotations

import mmap
import struct
from array import array
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
# ggml's limits (gguf.cpp, ggml.h): longer strings, bigger arrays or longer tensor names are refused.
MAX_STRING_BYTES = 1024**3
MAX_ARRAY_ITEMS = 1024**3
MAX_TENSOR_NAME_BYTES = 63  # GGML_MAX_NAME is 64, with the terminating zero
INT64_MAX = 2**63 - 1
# What llamadesk reads of one header at most. ggml's own limits above are checked only against
# the file's size, which costs nothing in a sparse file: 4 KB on disk claimed 150 million strings
# and took minutes and GBs to read, on every `models` listing. Real files stay far below: ~20-60
# keys, hundreds of tensors (thousands in the largest MoE models), and llama.cpp's largest
# vocabulary file (gemma-4) holds 777k strings and 14 MB of text.
MAX_KEYS = 16_384
MAX_TENSORS = 65_536
MAX_STRINGS = 4 * 1024**2  # items of all string arrays together
MAX_TEXT_BYTES = 256 * 1024**2  # bytes of all keys, strings and string arrays together
_U64 = struct.Struct("<Q")

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


SHOWN_CHARS = 60


def shown(text: str | bytes) -> str:
    """A name or value from the file, fit for a one-line message: quoted, control characters
    escaped (a damaged key may hold newlines), and cut short (it may be megabytes long)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    cut = text[:SHOWN_CHARS]
    cut = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in cut)
    return f"'{cut}'" + ("..." if len(text) > SHOWN_CHARS else "")


@dataclass(frozen=True)
class StringArray:
    """A metadata array of strings, decoded only on request (vocabularies are large)."""

    count: int
    offset: int
    _buffer: Any
    # Where each string's bytes start, and where the last one ends: the reader finds them while it
    # checks every length, so raw() need not walk the array again (a Python loop of ~0.1 s for a
    # 262k-token vocabulary, on every model load).
    _starts: array
    _end: int

    def raw(self) -> list[bytes]:
        """The strings as the bytes the file holds (the reader checked every length)."""
        starts = self._starts
        # Each string ends where the next one's 8-byte length begins (numpy: no Python loop).
        ends = array("Q", (np.frombuffer(starts, dtype=np.uint64)[1:] - np.uint64(8)).tobytes())
        ends.append(self._end)
        data = bytes(self._buffer[: self._end])
        # Slicing in C (map) rather than in a Python loop.
        return list(map(data.__getitem__, map(slice, starts, ends)))

    def decode(self) -> list[str]:
        return [item.decode("utf-8", errors="replace") for item in self.raw()]

    def __len__(self) -> int:
        return self.count


@dataclass(frozen=True)
class ValueType:
    """A metadata value's GGUF type, and its items' type when it is an array."""

    kind: GGUFValueType
    item: GGUFValueType | None = None

    def __str__(self) -> str:
        if self.item is None:
            return self.kind.name.lower()
        return f"array of {self.item.name.lower()}"

    @property
    def with_article(self) -> str:
        """'a uint32', 'an array of string': for messages."""
        text = str(self)
        return f"{'an' if text[0] in 'aeio' else 'a'} {text}"  # a uint32 ("you-int"), an int32


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order: fastest-varying dimension first
    ggml_type: GGMLQuantizationType | NewerGGMLType
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
    value_types: dict[str, ValueType]


class _Cursor:
    def __init__(self, buf: Any, size: int):
        self.buf, self.size, self.offs = buf, size, 0
        # What the header may still hold (MAX_STRINGS, MAX_TEXT_BYTES), charged before it is read.
        self.strings_left, self.text_bytes_left = MAX_STRINGS, MAX_TEXT_BYTES

    def charge_text(self, n_bytes: int, what: str) -> None:
        self.text_bytes_left -= n_bytes
        if self.text_bytes_left < 0:
            raise GGUFFormatError(
                f"{what} takes the header's text past {MAX_TEXT_BYTES // 1024**2} MiB, which no model comes near"
            )

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.offs + n > self.size:
            raise GGUFFormatError(f"it is truncated: the file ends inside {what} (byte {self.offs} of {self.size})")

    def unpack(self, fmt: str, what: str) -> Any:
        n = struct.calcsize("<" + fmt)
        self.need(n, what)
        value = struct.unpack_from("<" + fmt, self.buf, self.offs)
        self.offs += n
        return value[0] if len(value) == 1 else value

    def raw_string(self, what: str) -> bytes:
        length = self.unpack("Q", what)
        if length > MAX_STRING_BYTES:
            raise GGUFFormatError(f"{what} claims a string of {length} bytes (at most {MAX_STRING_BYTES})")
        self.need(length, what)
        self.charge_text(length, what)
        raw = bytes(self.buf[self.offs : self.offs + length])
        self.offs += length
        return raw

    def string(self, what: str) -> str:
        # llama.cpp takes strings as bytes; a stray invalid byte in a name is not damage that matters.
        return self.raw_string(what).decode("utf-8", errors="replace")

    def value_type(self, what: str) -> GGUFValueType:
        raw = self.unpack("I", what)
        try:
            return GGUFValueType(raw)
        except ValueError as err:
            raise GGUFFormatError(f"{what} has unknown value type {raw}") from err

    def value(self, vtype: GGUFValueType, what: str) -> tuple[Any, ValueType]:
        if vtype == GGUFValueType.STRING:
            return self.string(what), ValueType(vtype)
        if vtype == GGUFValueType.ARRAY:
            return self.array(what)
        return self.unpack(_SCALAR_FORMATS[vtype], what), ValueType(vtype)

    def array(self, what: str) -> tuple[Any, ValueType]:
        item_type = self.value_type(what)
        if item_type == GGUFValueType.ARRAY:
            # ggml's reader refuses them, so no model llama.cpp runs has one (and nesting is unbounded).
            raise GGUFFormatError(f"{what} is an array of arrays, which GGUF readers do not accept")
        count = self.unpack("Q", what)
        item_bytes = 8 if item_type == GGUFValueType.STRING else np.dtype(_NUMPY_TYPES[item_type]).itemsize
        if count > MAX_ARRAY_ITEMS or count * item_bytes > self.size - self.offs:
            raise GGUFFormatError(f"{what} claims {count} items, more than the file can hold (truncated or damaged)")
        vtype = ValueType(GGUFValueType.ARRAY, item_type)
        if item_type == GGUFValueType.STRING:
            if count > self.strings_left:
                raise GGUFFormatError(
                    f"{what} claims {count:,} strings; llamadesk reads at most {MAX_STRINGS:,} in all "
                    "(the largest vocabularies have under a million)"
                )
            self.strings_left -= count
            start, offs, size, buf = self.offs, self.offs, self.size, self.buf
            starts = array("Q")
            keep, length_at = starts.append, _U64.unpack_from
            for _ in range(count):  # skip, checking each length against the file (inlined: vocabularies are long)
                if offs + 8 > size:
                    break
                keep(offs + 8)
                offs += 8 + length_at(buf, offs)[0]
                if offs > size:
                    break
            else:
                self.charge_text(offs - start, what)  # its strings are read in one piece later
                self.offs = offs
                return StringArray(count, start, self.buf, starts, offs), vtype
            raise GGUFFormatError(f"it is truncated: the file ends inside {what} (byte {offs} of {size})")
        dtype = np.dtype(_NUMPY_TYPES[item_type]).newbyteorder("<")
        self.need(count * dtype.itemsize, what)
        values = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.offs)
        self.offs += count * dtype.itemsize
        return values, vtype


def _read_metadata(cur: _Cursor, n_kv: int) -> tuple[dict[str, Any], dict[str, ValueType]]:
    metadata: dict[str, Any] = {}
    types: dict[str, ValueType] = {}
    seen: set[bytes] = set()
    for i in range(n_kv):
        raw_key = cur.raw_string(f"metadata key #{i}")
        key, label = raw_key.decode("utf-8", errors="replace"), f"metadata {shown(raw_key)}"
        if not raw_key:
            raise GGUFFormatError(f"metadata key #{i} is empty")
        if raw_key in seen:
            raise GGUFFormatError(f"{label} appears twice")
        seen.add(raw_key)
        metadata[key], types[key] = cur.value(cur.value_type(label), label)
    return metadata, types


def _alignment(metadata: dict[str, Any], types: dict[str, ValueType]) -> int:
    if "general.alignment" not in metadata:
        return DEFAULT_ALIGNMENT
    if types["general.alignment"] != ValueType(GGUFValueType.UINT32):
        raise GGUFFormatError(f"general.alignment is {types['general.alignment'].with_article}, not a uint32")
    alignment = int(metadata["general.alignment"])
    if alignment <= 0 or alignment & (alignment - 1):
        raise GGUFFormatError(f"general.alignment {alignment} is not a power of two")
    return alignment


@dataclass(frozen=True)
class NewerGGMLType:
    """A ggml tensor type llama.cpp makes that the gguf package in use does not know yet."""

    name: str
    value: int


# ggml tensor types newer than the gguf package: value -> (name, values per block, bytes per
# block), from llama.cpp's ggml.h and ggml-common.h. Without them `quantize -t Q2_0` wrote a file
# every other command called damaged. block_q2_0: an f16 scale and 64 2-bit values.
NEWER_GGML_TYPES = {42: ("Q2_0", 64, 2 + 64 // 4)}


def _tensor_type(label: str, raw_type: int) -> tuple[GGMLQuantizationType | NewerGGMLType, int, int]:
    try:
        ggml_type = GGMLQuantizationType(raw_type)
        block, type_size = GGML_QUANT_SIZES[ggml_type]
    except (ValueError, KeyError) as err:
        if raw_type in NEWER_GGML_TYPES:
            name, block, type_size = NEWER_GGML_TYPES[raw_type]
            return NewerGGMLType(name, raw_type), block, type_size
        raise GGUFFormatError(f"{label} has unknown type {raw_type}") from err
    return ggml_type, block, type_size


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
    if n_kv > MAX_KEYS or n_tensors > MAX_TENSORS:
        raise GGUFFormatError(
            f"its header claims {n_tensors:,} tensors and {n_kv:,} keys; llamadesk reads at most "
            f"{MAX_TENSORS:,} and {MAX_KEYS:,} (models have hundreds of tensors and dozens of keys)"
        )
    # Each entry takes some bytes; counts the file cannot hold mean a damaged header.
    if n_tensors * MIN_TENSOR_INFO_BYTES + n_kv * MIN_KV_BYTES > size:
        raise GGUFFormatError(
            f"its header claims {n_tensors} tensors and {n_kv} keys, "
            f"more than its {size} bytes can hold (truncated or damaged)"
        )
    metadata, types = _read_metadata(cur, n_kv)
    alignment = _alignment(metadata, types)
    infos = []
    seen = set()
    for i in range(n_tensors):
        raw_name = cur.raw_string(f"tensor #{i}'s name")
        name, label = raw_name.decode("utf-8", errors="replace"), f"tensor {shown(raw_name)}"
        if len(raw_name) > MAX_TENSOR_NAME_BYTES:
            raise GGUFFormatError(f"tensor #{i}'s name is {len(raw_name)} bytes long (at most {MAX_TENSOR_NAME_BYTES})")
        if raw_name in seen:
            raise GGUFFormatError(f"{label} appears twice")
        seen.add(raw_name)
        n_dims = cur.unpack("I", label)
        if not 1 <= n_dims <= MAX_DIMS:
            raise GGUFFormatError(f"{label} has {n_dims} dimensions")
        shape = tuple(cur.unpack("Q", label) for _ in range(n_dims))
        raw_type, rel_offset = cur.unpack("IQ", label)
        infos.append((name, label, shape, raw_type, rel_offset))
    data_offset = -(-cur.offs // alignment) * alignment
    tensors = []
    expected_offset = 0  # ggml's reader wants each tensor right after the one before, padded
    for name, label, shape, raw_type, rel_offset in infos:
        if any(d > INT64_MAX for d in shape):
            raise GGUFFormatError(f"{label} has a negative dimension {shape}")
        n_elements = int(np.prod(shape, dtype=object))
        if n_elements > INT64_MAX:
            raise GGUFFormatError(f"the shape {shape} of {label} has more elements than ggml can count")
        ggml_type, block, type_size = _tensor_type(label, raw_type)
        if shape[0] % block:
            raise GGUFFormatError(f"the rows of {label} ({shape[0]} values) are not whole {ggml_type.name} blocks")
        n_bytes = n_elements // block * type_size
        start = data_offset + rel_offset
        if rel_offset % alignment:
            raise GGUFFormatError(f"{label} is not aligned to {alignment} bytes")
        if start + n_bytes > size:
            raise GGUFFormatError(f"{label} ends at byte {start + n_bytes} but the file has only {size} (truncated?)")
        if rel_offset != expected_offset:
            raise GGUFFormatError(
                f"{label} starts at data offset {rel_offset}, not {expected_offset} where the tensor "
                "before it ends (tensors overlap or leave gaps)"
            )
        expected_offset += -(-n_bytes // alignment) * alignment
        tensors.append(TensorInfo(name, shape, ggml_type, start, n_elements, n_bytes))
    return GGUFHeader(version, metadata, tensors, alignment, data_offset, size, types)


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
