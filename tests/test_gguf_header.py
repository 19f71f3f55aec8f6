"""The GGUF header reader on files built byte by byte: what it reads, and each damage it names.

GGUFWriter cannot write most of these files (it refuses what the reader must refuse), so a small
builder here lays out the format as the spec gives it: magic, version, counts, key/value pairs,
tensor infos, padding to the alignment, tensor data.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pytest
from gguf.constants import GGMLQuantizationType, GGUFValueType

from llamadesk.app.core.gguf_header import (
    MAX_KEYS,
    MAX_TENSORS,
    GGUFFormatError,
    StringArray,
    ValueType,
    read_gguf_header,
)

T = GGUFValueType
F32 = GGMLQuantizationType.F32


def text(value: bytes) -> bytes:
    return struct.pack("<Q", len(value)) + value


def kv(key: bytes, vtype: int, payload: bytes) -> bytes:
    return text(key) + struct.pack("<I", vtype) + payload


def strings(*items: bytes) -> bytes:
    """The payload of an array of strings."""
    return struct.pack("<IQ", T.STRING, len(items)) + b"".join(text(item) for item in items)


def tensor(name: bytes, shape: tuple[int, ...], ggml_type: int = F32, offset: int = 0) -> bytes:
    return text(name) + struct.pack(f"<I{len(shape)}QIQ", len(shape), *shape, ggml_type, offset)


def gguf(kvs=(), tensors=(), data: bytes = b"", version: int = 3, alignment: int = 32) -> bytes:
    """A GGUF file: `alignment` pads the header (it does not write general.alignment)."""
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs) + b"".join(tensors)
    return head + bytes(-len(head) % alignment) + data


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    return path


def refusal(tmp_path: Path, data: bytes) -> str:
    with pytest.raises(GGUFFormatError) as err:
        read_gguf_header(write(tmp_path, data))
    return str(err.value)


# -- what a sound header reads as -------------------------------------------------------------


def test_every_value_type_reads_back_with_its_type(tmp_path):
    kvs = [
        kv(b"u8", T.UINT8, struct.pack("<B", 200)),
        kv(b"i8", T.INT8, struct.pack("<b", -100)),
        kv(b"u16", T.UINT16, struct.pack("<H", 60000)),
        kv(b"i16", T.INT16, struct.pack("<h", -30000)),
        kv(b"u32", T.UINT32, struct.pack("<I", 4_000_000_000)),
        kv(b"i32", T.INT32, struct.pack("<i", -2_000_000_000)),
        kv(b"f32", T.FLOAT32, struct.pack("<f", 0.5)),
        kv(b"bool", T.BOOL, b"\x01"),
        kv(b"u64", T.UINT64, struct.pack("<Q", 2**64 - 1)),
        kv(b"i64", T.INT64, struct.pack("<q", -(2**63))),
        kv(b"f64", T.FLOAT64, struct.pack("<d", 1e300)),
        kv(b"name", T.STRING, text("naïve".encode() + b"\xff")),
        kv(b"ids", T.ARRAY, struct.pack("<IQ3i", T.INT32, 3, 7, -8, 9)),
        kv(b"vocab", T.ARRAY, strings(b"<s>", b"", "é".encode())),
    ]
    header = read_gguf_header(write(tmp_path, gguf(kvs)))
    meta = header.metadata
    assert [meta[k] for k in ("u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "u64", "i64", "f64")] == [
        200,
        -100,
        60000,
        -30000,
        4_000_000_000,
        -2_000_000_000,
        0.5,
        True,
        2**64 - 1,
        -(2**63),
        1e300,
    ]
    assert meta["name"] == "naïve\ufffd"  # an invalid byte in a string is replaced, not refused
    assert meta["ids"].dtype == np.int32 and meta["ids"].tolist() == [7, -8, 9]
    vocab = meta["vocab"]
    assert isinstance(vocab, StringArray) and len(vocab) == 3
    assert vocab.raw() == [b"<s>", b"", "é".encode()] and vocab.decode() == ["<s>", "", "é"]
    assert header.value_types["u8"] == ValueType(T.UINT8) and str(header.value_types["u8"]) == "uint8"
    assert str(header.value_types["ids"]) == "array of int32"
    assert header.value_types["vocab"].with_article == "an array of string"
    assert ValueType(T.STRING).with_article == "a string"
    assert header.version == 3 and header.tensors == [] and header.alignment == 32


def test_tensors_are_placed_after_the_padded_header(tmp_path):
    tensors = [tensor(b"a", (4,), offset=0), tensor(b"b", (32, 2), GGMLQuantizationType.Q8_0, offset=32)]
    data = gguf(tensors=tensors, data=bytes(32 + 2 * 34))
    header = read_gguf_header(write(tmp_path, data))
    a, b = header.tensors
    assert header.data_offset % 32 == 0 and header.data_offset == len(data) - 32 - 68
    assert (a.name, a.shape, a.ggml_type, a.data_offset, a.n_elements, a.n_bytes) == (
        "a",
        (4,),
        F32,
        header.data_offset,
        4,
        16,
    )
    # Q8_0 blocks are 32 values in 34 bytes; the f32 tensor's 16 bytes are padded to 32.
    assert (b.ggml_type, b.data_offset, b.n_elements, b.n_bytes) == (
        GGMLQuantizationType.Q8_0,
        header.data_offset + 32,
        64,
        68,
    )
    assert header.file_size == len(data)


def test_a_power_of_two_alignment_places_the_data(tmp_path):
    alignment = kv(b"general.alignment", T.UINT32, struct.pack("<I", 64))
    data = gguf([alignment], [tensor(b"w", (8,))], bytes(32), version=2, alignment=64)
    header = read_gguf_header(write(tmp_path, data))
    # The header takes 90 bytes: its data starts at 128 (at 96 with the default alignment of 32).
    assert header.version == 2 and header.alignment == 64
    assert header.data_offset == 128 and header.tensors[0].data_offset == 128


# -- damage, named in one line ----------------------------------------------------------------


def test_a_file_shorter_than_any_header(tmp_path):
    assert refusal(tmp_path, b"GGUF\x03\x00\x00\x00") == "it is only 8 bytes long"


def test_a_file_without_the_magic(tmp_path):
    assert refusal(tmp_path, b"GGML" + gguf()[4:]) == "it does not start with 'GGUF'"


def test_a_version_this_reader_does_not_know(tmp_path):
    assert refusal(tmp_path, gguf(version=1)) == "GGUF version 1 is not supported (only 2 and 3)"


def test_counts_the_file_cannot_hold(tmp_path):
    data = b"GGUF" + struct.pack("<IQQ", 3, 2, 10_000)
    assert refusal(tmp_path, data) == (
        "its header claims 2 tensors and 10000 keys, more than its 24 bytes can hold (truncated or damaged)"
    )


def sparse(tmp_path: Path, head: bytes, size: int) -> Path:
    """A file of `size` bytes that is `head` and then a hole: the disk holds only the head."""
    path = write(tmp_path, head)
    with path.open("r+b") as handle:
        handle.truncate(size)
    return path


def refused_fast(path: Path) -> str:
    """The reader's refusal, which must come in well under a second whatever the file claims."""
    started = time.monotonic()
    with pytest.raises(GGUFFormatError) as err:
        read_gguf_header(path)
    assert time.monotonic() - started < 0.5
    return str(err.value)


@pytest.mark.parametrize(
    ("n_tensors", "n_kv"), [(0, 3_000_000), (2_000_000, 0), (MAX_TENSORS + 1, 3), (1, MAX_KEYS + 1)]
)
def test_counts_past_what_any_model_has_are_refused_before_reading(tmp_path, n_tensors, n_kv):
    # Each count fits the file (a sparse one costs nothing): before, 3M keys took 59 s and 1.1 GB.
    path = sparse(tmp_path, b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv), 200 * 1024**2)
    assert refused_fast(path) == (
        f"its header claims {n_tensors:,} tensors and {n_kv:,} keys; llamadesk reads at most 65,536 and 16,384 "
        "(models have hundreds of tensors and dozens of keys)"
    )


def test_an_array_of_more_strings_than_any_vocabulary_is_refused_before_walking_it(tmp_path):
    # 150 million empty strings: 1.2 GB, all of it a hole. Before: killed after 60 s at 1.6 GB.
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + kv(b"v", T.ARRAY, strings(b"a", b"b"))
    head += text(b"big") + struct.pack("<IIQ", T.ARRAY, T.STRING, 150_000_000)
    assert refused_fast(sparse(tmp_path, head, len(head) + 8 * 150_000_000)) == (
        "metadata 'big' claims 150,000,000 strings; llamadesk reads at most 4,194,304 in all "
        "(the largest vocabularies have under a million)"
    )


def test_a_string_of_hundreds_of_megabytes_is_refused_before_it_is_copied(tmp_path):
    # A general.name of 300 MB of zero bytes: `info` printed all of them, at 1.25 GB of memory.
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + text(b"general.name") + struct.pack("<IQ", T.STRING, 300 * 10**6)
    assert refused_fast(sparse(tmp_path, head, len(head) + 300 * 10**6)) == (
        "metadata 'general.name' takes the header's text past 256 MiB, which no model comes near"
    )


def test_the_largest_real_vocabulary_reads_well_within_the_limits():
    from tests.fixtures.smollm2_f16 import llama_cpp_source

    header = read_gguf_header(llama_cpp_source() / "models" / "ggml-vocab-gemma-4.gguf")
    assert sum(len(v) for v in header.metadata.values() if isinstance(v, StringArray)) == 777_050


def test_a_string_longer_than_the_file(tmp_path):
    data = gguf([kv(b"k", T.STRING, struct.pack("<Q", 1000) + b"short")])
    # The string's bytes start after magic, version, counts (24), the key (8 + 1) and its type (4).
    at = 24 + 9 + 4 + 8
    assert refusal(tmp_path, data) == f"it is truncated: the file ends inside metadata 'k' (byte {at} of {len(data)})"


def test_a_string_longer_than_ggml_allows(tmp_path):
    data = gguf([kv(b"k", T.STRING, struct.pack("<Q", 2**30 + 1))])
    assert refusal(tmp_path, data) == "metadata 'k' claims a string of 1073741825 bytes (at most 1073741824)"


def test_an_unknown_value_type(tmp_path):
    assert refusal(tmp_path, gguf([kv(b"k", 99, bytes(8))])) == "metadata 'k' has unknown value type 99"


def test_an_array_of_arrays(tmp_path):
    data = gguf([kv(b"nested", T.ARRAY, struct.pack("<IQ", T.ARRAY, 1) + bytes(16))])
    assert refusal(tmp_path, data) == "metadata 'nested' is an array of arrays, which GGUF readers do not accept"


def test_an_array_with_more_items_than_the_file_holds(tmp_path):
    data = gguf([kv(b"ids", T.ARRAY, struct.pack("<IQ", T.INT32, 1000) + bytes(16))])
    assert (
        refusal(tmp_path, data)
        == "metadata 'ids' claims 1000 items, more than the file can hold (truncated or damaged)"
    )


@pytest.mark.parametrize(
    "items, tail, at",
    [
        # The second string's length field is cut off by the end of the file (at its start).
        ((text(b"abcdefgh"),), b"\x00" * 4, -4),
        # The second string claims 100 bytes, and only 3 follow its length.
        ((text(b"a"), struct.pack("<Q", 100)), b"xyz", -3 + 100),
    ],
    ids=["length-cut", "bytes-cut"],
)
def test_an_array_of_strings_cut_short(tmp_path, items, tail, at):
    payload = struct.pack("<IQ", T.STRING, 2) + b"".join(items) + tail
    data = gguf([kv(b"vocab", T.ARRAY, payload)], alignment=1)  # no padding: the file ends with the array
    expected = f"it is truncated: the file ends inside metadata 'vocab' (byte {len(data) + at} of {len(data)})"
    assert refusal(tmp_path, data) == expected


def test_an_empty_key(tmp_path):
    assert refusal(tmp_path, gguf([kv(b"", T.UINT8, b"\x01")])) == "metadata key #0 is empty"


def test_a_key_twice(tmp_path):
    data = gguf([kv(b"k", T.UINT8, b"\x01"), kv(b"k", T.UINT8, b"\x02")])
    assert refusal(tmp_path, data) == "metadata 'k' appears twice"


def test_a_key_with_control_characters_is_shown_escaped_and_cut(tmp_path):
    key = b"evil\nkey" + b"x" * 100
    data = gguf([kv(key, T.UINT8, b"\x01"), kv(key, T.UINT8, b"\x02")])
    assert refusal(tmp_path, data) == "metadata 'evil\\x0akey" + "x" * 52 + "'... appears twice"


@pytest.mark.parametrize(
    "value, message",
    [
        (kv(b"general.alignment", T.INT32, struct.pack("<i", 32)), "general.alignment is an int32, not a uint32"),
        (
            kv(b"general.alignment", T.STRING, text(b"32")),
            "general.alignment is a string, not a uint32",
        ),
        (kv(b"general.alignment", T.UINT32, struct.pack("<I", 48)), "general.alignment 48 is not a power of two"),
        (kv(b"general.alignment", T.UINT32, struct.pack("<I", 0)), "general.alignment 0 is not a power of two"),
    ],
    ids=["int32", "string", "48", "0"],
)
def test_an_alignment_ggml_would_refuse(tmp_path, value, message):
    assert refusal(tmp_path, gguf([value])) == message


def test_a_tensor_name_longer_than_ggml_allows(tmp_path):
    data = gguf(tensors=[tensor(b"w" * 64, (4,))], data=bytes(16))
    assert refusal(tmp_path, data) == "tensor #0's name is 64 bytes long (at most 63)"
    assert read_gguf_header(write(tmp_path, gguf(tensors=[tensor(b"w" * 63, (4,))], data=bytes(16)))).tensors


def test_a_tensor_name_twice(tmp_path):
    data = gguf(tensors=[tensor(b"w", (8,)), tensor(b"w", (8,), offset=32)], data=bytes(64))
    assert refusal(tmp_path, data) == "tensor 'w' appears twice"


@pytest.mark.parametrize("n_dims", [0, 5])
def test_a_tensor_with_a_dimension_count_ggml_does_not_have(tmp_path, n_dims):
    info = text(b"w") + struct.pack("<I", n_dims) + struct.pack("<Q", 4) * n_dims + struct.pack("<IQ", F32, 0)
    assert refusal(tmp_path, gguf(tensors=[info], data=bytes(64))) == f"tensor 'w' has {n_dims} dimensions"


def test_a_tensor_with_a_negative_dimension(tmp_path):
    data = gguf(tensors=[tensor(b"w", (4, 2**64 - 1))], data=bytes(16))
    assert refusal(tmp_path, data) == "tensor 'w' has a negative dimension (4, 18446744073709551615)"


def test_a_tensor_with_more_elements_than_ggml_counts(tmp_path):
    data = gguf(tensors=[tensor(b"w", (2**32, 2**31))], data=bytes(16))
    assert refusal(tmp_path, data) == (
        "the shape (4294967296, 2147483648) of tensor 'w' has more elements than ggml can count"
    )


def test_a_tensor_of_an_unknown_type(tmp_path):
    data = gguf(tensors=[tensor(b"w", (4,), ggml_type=99)], data=bytes(16))
    assert refusal(tmp_path, data) == "tensor 'w' has unknown type 99"


def test_a_tensor_whose_rows_are_not_whole_blocks(tmp_path):
    data = gguf(tensors=[tensor(b"w", (16, 2), GGMLQuantizationType.Q4_0)], data=bytes(64))
    assert refusal(tmp_path, data) == "the rows of tensor 'w' (16 values) are not whole Q4_0 blocks"


def test_a_tensor_off_the_alignment(tmp_path):
    data = gguf(tensors=[tensor(b"w", (4,), offset=16)], data=bytes(64))
    assert refusal(tmp_path, data) == "tensor 'w' is not aligned to 32 bytes"


def test_a_tensor_past_the_end_of_the_file(tmp_path):
    data = gguf(tensors=[tensor(b"w", (8,))], data=bytes(16))
    assert (
        refusal(tmp_path, data)
        == f"tensor 'w' ends at byte {len(data) - 16 + 32} but the file has only {len(data)} (truncated?)"
    )


def test_tensors_with_a_gap_between_them(tmp_path):
    data = gguf(tensors=[tensor(b"a", (4,)), tensor(b"b", (4,), offset=64)], data=bytes(96))
    assert refusal(tmp_path, data) == (
        "tensor 'b' starts at data offset 64, not 32 where the tensor before it ends (tensors overlap or leave gaps)"
    )


def test_tensors_that_overlap(tmp_path):
    data = gguf(tensors=[tensor(b"a", (16,)), tensor(b"b", (4,), offset=32)], data=bytes(96))
    assert "tensor 'b' starts at data offset 32, not 64 where" in refusal(tmp_path, data)


def test_every_tensor_type_llama_cpp_writes_is_known_to_the_reader():
    # Q2_0 (42) was not in the gguf package: `quantize -t Q2_0` wrote a file every other command called damaged.
    import re

    from llamadesk.app.core.gguf_header import _tensor_type
    from tests.fixtures.smollm2_f16 import llama_cpp_source

    header = (llama_cpp_source() / "ggml" / "include" / "ggml.h").read_text()
    enum = header[header.index("enum ggml_type {") : header.index("GGML_TYPE_COUNT")]
    types = re.findall(r"^\s*GGML_TYPE_(\w+)\s*=\s*(\d+),", enum, re.MULTILINE)  # removed ones are comments
    assert len(types) > 30
    for name, value in types:
        assert _tensor_type("t", int(value))[0].name == name
