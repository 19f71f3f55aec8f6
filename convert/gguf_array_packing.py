"""A GGUFWriter that packs long metadata arrays (a vocabulary) in one step instead of item by item.

gguf-py packs an array value by calling its general packer once per element, through a
recursion and a type check each: for a 150k-token vocabulary (tokens, scores, types, merges,
over 300k values) that is over a second, a fixed cost of every conversion that is larger than
the tensor work of a small model. The bytes written are the same (tests/test_convert_readers.py
compares both on every kind of array the converter writes); anything this writer does not
recognise, or would pack differently (a value out of range, big-endian files, nested arrays),
goes to gguf-py's own packer, which also raises its own errors for malformed arrays.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import gguf
import numpy as np

V = gguf.GGUFValueType
# Element types packed as one numpy array, with the little-endian dtype gguf-py's struct format means.
NUMPY_ELEMENTS: dict[gguf.GGUFValueType, str] = {
    V.UINT8: "<u1",
    V.INT8: "<i1",
    V.UINT16: "<u2",
    V.INT16: "<i2",
    V.UINT32: "<u4",
    V.INT32: "<i4",
    V.UINT64: "<u8",
    V.INT64: "<i8",
    V.FLOAT32: "<f4",
    V.FLOAT64: "<f8",
    V.BOOL: "?",
}
LENGTH = struct.Struct("<Q")


def _element_type(values: Sequence[Any]) -> gguf.GGUFValueType | None:
    """The one GGUF type of every element as gguf-py decides it, or None when they differ."""
    samples = {type(value): value for value in values}  # gguf-py's choice depends on the type alone
    kinds = {V.get_type(sample) for sample in samples.values()}
    return kinds.pop() if len(kinds) == 1 else None


def _packed_strings(values: Sequence[Any]) -> bytes:
    encoded = [value.encode("utf-8") if isinstance(value, str) else bytes(value) for value in values]
    return b"".join(LENGTH.pack(len(item)) + item for item in encoded)


def _packed_numbers(values: Sequence[Any], element: gguf.GGUFValueType) -> bytes | None:
    """The elements as one little-endian block; None where struct would refuse one (out of range)."""
    dtype = np.dtype(NUMPY_ELEMENTS[element])
    accepted = (int, float) if dtype.kind == "f" else int  # what struct packs as this type without error
    if element != V.BOOL and not all(isinstance(value, accepted) for value in values):
        return None
    if element in (V.FLOAT32, V.FLOAT64):
        wide = np.asarray(values, dtype=np.float64)
        with np.errstate(over="ignore"):
            packed = wide.astype(dtype)
        # struct refuses a finite value too large for float32; numpy would write inf.
        return packed.tobytes() if np.array_equal(np.isfinite(wide), np.isfinite(packed)) else None
    if element == V.BOOL:
        return np.asarray(values, dtype=bool).tobytes()
    try:
        wide = np.asarray(values, dtype=np.int64 if dtype.kind == "i" else np.uint64)
    except OverflowError:
        return None
    info = np.iinfo(dtype)
    if wide.size and (wide.min() < info.min or wide.max() > info.max):
        return None
    return wide.astype(dtype).tobytes()


class ArrayPackingWriter(gguf.GGUFWriter):
    """gguf.GGUFWriter, with arrays of strings or numbers packed whole (same bytes)."""

    def _pack_val(self, val: Any, vtype: gguf.GGUFValueType, add_vtype: bool, sub_type=None) -> bytes:
        fast = self._packed_array(val, sub_type) if vtype == V.ARRAY else None
        if fast is None:
            return super()._pack_val(val, vtype, add_vtype, sub_type)
        return (self._pack("I", vtype) if add_vtype else b"") + fast

    def _packed_array(self, val: Any, sub_type: gguf.GGUFValueType | None) -> bytes | None:
        """The array's type, length and elements as gguf-py packs them, or None to leave it to gguf-py."""
        if self.endianess != gguf.GGUFEndian.LITTLE or isinstance(val, (bytes, bytearray)):
            return None
        if not isinstance(val, Sequence) or len(val) == 0:
            return None
        element = sub_type if sub_type is not None else _element_type(val)
        if element == V.STRING:
            if not all(isinstance(value, (str, bytes, bytearray)) for value in val):
                return None
            body = _packed_strings(val)
        elif element in NUMPY_ELEMENTS:
            body = _packed_numbers(val, element)
        else:
            return None
        if body is None:
            return None
        return struct.pack("<IQ", element, len(val)) + body
