"""Mutated GGUF files made from the real SmolLM2 starter, and the calls the fuzz tests make on them.

The fuzz driver forks one child per case; a case names a mutant by its index, and the child
rebuilds it here (a fixed seed gives the same mutants in every process), writes it, runs one
llamadesk entry point on it and deletes it. Only the header is written (1.8 MB of the 94 MB file:
metadata, vocabulary and tensor table); the tensor data is a sparse tail of zeros, so a mutant
costs its header's bytes on disk, and llama.cpp still finds every tensor inside the file.

Each mutant has a class (what kind of damage) and, where the outcome is known, what `info` must
say: "refuse" (the file would not load, or would crash llama.cpp) or "accept" (a harmless change,
such as another name or a valid alignment). Random byte flips have no expected verdict: for them
the rule is that `info` and Engine.load agree.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import struct
import sys
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

SEED = 13
REFUSE, ACCEPT = "refuse", "accept"
U8, U16, I32, U32, U64, F32, BOOL, STR, ARR = (
    GGUFValueType.UINT8,
    GGUFValueType.UINT16,
    GGUFValueType.INT32,
    GGUFValueType.UINT32,
    GGUFValueType.UINT64,
    GGUFValueType.FLOAT32,
    GGUFValueType.BOOL,
    GGUFValueType.STRING,
    GGUFValueType.ARRAY,
)
_SCALAR = {U8: "B", U16: "H", I32: "i", U32: "I", U64: "Q", F32: "f", BOOL: "?"}


# --- a small GGUF codec, independent of the reader under test ---------------------------------


def enc_str(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def enc(vtype: GGUFValueType, value) -> bytes:
    """A value's bytes (after its type): a scalar, a string, or (item type, items) for an array."""
    if vtype == STR:
        return enc_str(value)
    if vtype == ARR:
        item_type, items = value
        body = b"".join(enc(item_type, item) for item in items)
        return struct.pack("<IQ", item_type, len(items)) + body
    return struct.pack("<" + _SCALAR[vtype], value)


def nested_array(depth: int) -> bytes:
    """An array of arrays `depth` deep, with one uint32 at the bottom (GGUF readers refuse these)."""
    inner = struct.pack("<IQI", U32, 1, 7)
    for _ in range(depth):
        inner = struct.pack("<IQ", ARR, 1) + inner
    return inner


@dataclass
class KV:
    key: bytes
    vtype: int
    payload: bytes  # the encoded value, after its type


@dataclass
class Tensor:
    name: bytes
    dims: list[int]
    ttype: int
    offset: int

    def n_bytes(self) -> int:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType(self.ttype)]
        return math.prod(self.dims) // block * size


@dataclass
class Layout:
    version: int
    kvs: list[KV]
    tensors: list[Tensor]
    data_size: int
    magic: bytes = b"GGUF"
    n_tensors: int | None = None  # None: the real count
    n_kv: int | None = None
    alignment: int = 32

    def encode(self) -> bytes:
        out = [self.magic, struct.pack("<I", self.version)]
        n_tensors = len(self.tensors) if self.n_tensors is None else self.n_tensors
        n_kv = len(self.kvs) if self.n_kv is None else self.n_kv
        out.append(struct.pack("<QQ", n_tensors, n_kv))
        for kv in self.kvs:
            out += [enc_str(kv.key), struct.pack("<I", kv.vtype), kv.payload]
        for t in self.tensors:
            out += [enc_str(t.name), struct.pack("<I", len(t.dims))]
            out += [struct.pack("<Q", d) for d in t.dims]
            out.append(struct.pack("<IQ", t.ttype, t.offset))
        return b"".join(out)

    def kv(self, key: str) -> KV:
        return next(kv for kv in self.kvs if kv.key == key.encode())

    def set(self, key: str, vtype: GGUFValueType, value=None, payload: bytes | None = None) -> Layout:
        payload = enc(vtype, value) if payload is None else payload
        for kv in self.kvs:
            if kv.key == key.encode():
                kv.vtype, kv.payload = vtype, payload
                return self
        self.kvs.append(KV(key.encode(), vtype, payload))
        return self

    def drop(self, key: str) -> Layout:
        self.kvs = [kv for kv in self.kvs if kv.key != key.encode()]
        return self

    def relayout(self, alignment: int) -> Layout:
        """Tensor offsets packed for another alignment (what a writer would have done)."""
        offset = 0
        for t in self.tensors:
            t.offset = offset
            offset += -(-t.n_bytes() // alignment) * alignment
        self.alignment = alignment
        self.data_size = offset
        return self


def _parse(buf: bytes, file_size: int) -> Layout:
    offs = 24
    version, (n_tensors, n_kv) = struct.unpack_from("<I", buf, 4)[0], struct.unpack_from("<QQ", buf, 8)

    def string() -> bytes:
        nonlocal offs
        (length,) = struct.unpack_from("<Q", buf, offs)
        offs += 8 + length
        return buf[offs - length : offs]

    def skip(vtype: int) -> None:
        nonlocal offs
        if vtype == STR:
            string()
        elif vtype == ARR:
            item, count = struct.unpack_from("<IQ", buf, offs)
            offs += 12
            for _ in range(count):
                skip(item)
        else:
            offs += struct.calcsize("<" + _SCALAR[GGUFValueType(vtype)])

    kvs = []
    for _ in range(n_kv):
        key = string()
        (vtype,) = struct.unpack_from("<I", buf, offs)
        offs += 4
        start = offs
        skip(vtype)
        kvs.append(KV(key, vtype, buf[start:offs]))
    tensors = []
    for _ in range(n_tensors):
        name = string()
        (n_dims,) = struct.unpack_from("<I", buf, offs)
        dims = list(struct.unpack_from(f"<{n_dims}Q", buf, offs + 4))
        ttype, offset = struct.unpack_from("<IQ", buf, offs + 4 + 8 * n_dims)
        offs += 4 + 8 * n_dims + 12
        tensors.append(Tensor(name, dims, ttype, offset))
    data_offset = -(-offs // 32) * 32
    return Layout(version, kvs, tensors, file_size - data_offset)


@dataclass(frozen=True)
class Base:
    path: Path
    header: bytes  # the file up to where the tensor data starts (padding included)
    file_size: int
    layout: Layout
    kv_ends: list[int]  # byte offsets where each metadata entry ends
    tensor_ends: list[int]  # byte offsets where each tensor-table entry ends


def _load_base() -> Base:
    from llamadesk.app.library.starters import starter_path

    path = starter_path("smollm2")
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(4 * 1024 * 1024)
    layout = _parse(head, size)
    data_offset = size - layout.data_size
    kv_ends, offs = [], 24
    for kv in layout.kvs:
        offs += 8 + len(kv.key) + 4 + len(kv.payload)
        kv_ends.append(offs)
    tensor_ends = []
    for t in layout.tensors:
        offs += 8 + len(t.name) + 4 + 8 * len(t.dims) + 12
        tensor_ends.append(offs)
    return Base(path, head[:data_offset], size, layout, kv_ends, tensor_ends)


BASE = _load_base()


# --- the mutants --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutant:
    id: str
    kind: str
    expect: str | None
    build: Callable[[], tuple[bytes, int]] = field(repr=False, compare=False)  # (bytes to write, file size)


def _structured(change: Callable[[Layout], object]) -> Callable[[], tuple[bytes, int]]:
    def build() -> tuple[bytes, int]:
        layout = deepcopy(BASE.layout)
        change(layout)
        head = layout.encode()
        aligned = -(-len(head) // layout.alignment) * layout.alignment
        return head, aligned + layout.data_size

    return build


def _bytes(edit: Callable[[bytearray], object], size: int | None = None) -> Callable[[], tuple[bytes, int]]:
    def build() -> tuple[bytes, int]:
        head = bytearray(BASE.header)
        edit(head)
        return bytes(head), BASE.file_size if size is None else size

    return build


def _truncated(cut: int) -> Callable[[], tuple[bytes, int]]:
    return lambda: (BASE.header[:cut], cut)


def _tensor(index: int, **changes) -> Callable[[Layout], None]:
    def change(layout: Layout) -> None:
        for name, value in changes.items():
            setattr(layout.tensors[index], name, value(layout.tensors[index]) if callable(value) else value)

    return change


# The keys llama.cpp reads, with the type it reads them as (an array's item type for arrays).
TYPED_KEYS = {
    "general.alignment": U32,
    "general.architecture": STR,
    "general.file_type": U32,
    "llama.block_count": U32,
    "llama.context_length": U32,
    "llama.embedding_length": U32,
    "llama.feed_forward_length": U32,
    "llama.attention.head_count": U32,
    "llama.attention.head_count_kv": U32,
    "llama.rope.dimension_count": U32,
    "llama.rope.freq_base": F32,
    "llama.attention.layer_norm_rms_epsilon": F32,
    "llama.vocab_size": U32,
    "tokenizer.ggml.model": STR,
    "tokenizer.ggml.pre": STR,
    "tokenizer.ggml.tokens": (ARR, STR),
    "tokenizer.ggml.token_type": (ARR, I32),
    "tokenizer.ggml.merges": (ARR, STR),
    "tokenizer.ggml.bos_token_id": U32,
    "tokenizer.ggml.eos_token_id": U32,
    "tokenizer.ggml.add_bos_token": BOOL,
    "tokenizer.chat_template": STR,
}
WRONG_VALUES = {
    "string": (STR, "64", STR),
    "uint64": (U64, 64, U64),
    "int32": (I32, -1, I32),
    "float32": (F32, float("nan"), F32),
    "bool": (BOOL, True, BOOL),
    "uint32": (U32, 3, U32),
    "array-of-uint32": (ARR, (U32, [1, 2, 3]), (ARR, U32)),
    "array-of-strings": (ARR, (STR, ["a", "b"]), (ARR, STR)),
}


def _typed_mutants() -> list[Mutant]:
    """Each key llama.cpp reads, given every other type: llama.cpp reads each as one exact type."""
    out = []
    for key, real in TYPED_KEYS.items():
        for label, (vtype, value, kind) in WRONG_VALUES.items():
            if kind == real:
                continue
            change = lambda layout, k=key, t=vtype, v=value: layout.set(k, t, v)  # noqa: E731
            out.append(Mutant(f"type-{key}-{label}", "wrong type", REFUSE, _structured(change)))
        nested = lambda layout, k=key: layout.set(k, ARR, payload=nested_array(5000))  # noqa: E731
        out.append(Mutant(f"type-{key}-nested", "arrays nested 5,000 deep", REFUSE, _structured(nested)))
        huge = lambda layout, k=key: layout.set(k, ARR, payload=struct.pack("<IQ", U32, 2**40))  # noqa: E731
        out.append(Mutant(f"type-{key}-huge-count", "huge counts", REFUSE, _structured(huge)))
    return out


def _range_mutants() -> list[Mutant]:
    tokens = BASE.layout.kv("tokenizer.ggml.tokens").payload

    def token_list() -> list[bytes]:
        offs, out = 12, []
        for _ in range(struct.unpack_from("<Q", tokens, 4)[0]):
            (length,) = struct.unpack_from("<Q", tokens, offs)
            out.append(tokens[offs + 8 : offs + 8 + length])
            offs += 8 + length
        return out

    def with_tokens(edit: Callable[[list[bytes]], object]) -> Callable[[Layout], object]:
        def change(layout: Layout) -> None:
            items = token_list()
            edit(items)
            layout.set("tokenizer.ggml.tokens", ARR, (STR, items))

        return change

    def dup(items: list[bytes]) -> None:
        items[300] = items[299]

    def fresh(items: list[bytes]) -> None:
        items[40000] = b"llamadesk-fuzz-token"

    def empty(items: list[bytes]) -> None:
        items[30000] = b""

    cases: list[tuple[str, str, Callable[[Layout], object]]] = [
        ("block_count-0", REFUSE, lambda lay: lay.set("llama.block_count", U32, 0)),
        ("block_count-513", REFUSE, lambda lay: lay.set("llama.block_count", U32, 513)),
        ("block_count-max", REFUSE, lambda lay: lay.set("llama.block_count", U32, 2**32 - 1)),
        ("block_count-29", REFUSE, lambda lay: lay.set("llama.block_count", U32, 29)),
        ("block_count-31", REFUSE, lambda lay: lay.set("llama.block_count", U32, 31)),
        ("context_length-0", REFUSE, lambda lay: lay.set("llama.context_length", U32, 0)),
        ("context_length-max", REFUSE, lambda lay: lay.set("llama.context_length", U32, 2**32 - 1)),
        ("context_length-2^24+1", REFUSE, lambda lay: lay.set("llama.context_length", U32, 2**24 + 1)),
        ("context_length-2^24", ACCEPT, lambda lay: lay.set("llama.context_length", U32, 2**24)),
        ("context_length-4096", ACCEPT, lambda lay: lay.set("llama.context_length", U32, 4096)),
        ("embedding_length-0", REFUSE, lambda lay: lay.set("llama.embedding_length", U32, 0)),
        ("embedding_length-577", REFUSE, lambda lay: lay.set("llama.embedding_length", U32, 577)),
        ("embedding_length-1152", REFUSE, lambda lay: lay.set("llama.embedding_length", U32, 1152)),
        ("embedding_length-2^31", REFUSE, lambda lay: lay.set("llama.embedding_length", U32, 2**31)),
        ("feed_forward_length-0", REFUSE, lambda lay: lay.set("llama.feed_forward_length", U32, 0)),
        ("feed_forward_length-1537", REFUSE, lambda lay: lay.set("llama.feed_forward_length", U32, 1537)),
        ("feed_forward_length-missing", REFUSE, lambda lay: lay.drop("llama.feed_forward_length")),
        ("head_count-0", REFUSE, lambda lay: lay.set("llama.attention.head_count", U32, 0)),
        ("head_count-7", REFUSE, lambda lay: lay.set("llama.attention.head_count", U32, 7)),
        ("head_count-3", REFUSE, lambda lay: lay.set("llama.attention.head_count", U32, 3)),
        ("head_count-1000", REFUSE, lambda lay: lay.set("llama.attention.head_count", U32, 1000)),
        ("head_count-missing", REFUSE, lambda lay: lay.drop("llama.attention.head_count")),
        ("head_count-per-layer", ACCEPT, lambda lay: lay.set("llama.attention.head_count", ARR, (U32, [9] * 30))),
        ("head_count-per-layer-29", REFUSE, lambda lay: lay.set("llama.attention.head_count", ARR, (U32, [9] * 29))),
        (
            "head_count-per-layer-negative",
            REFUSE,
            lambda lay: lay.set("llama.attention.head_count", ARR, (I32, [-1] * 30)),
        ),
        ("head_count_kv-0", REFUSE, lambda lay: lay.set("llama.attention.head_count_kv", U32, 0)),
        ("head_count_kv-2", REFUSE, lambda lay: lay.set("llama.attention.head_count_kv", U32, 2)),
        ("head_count_kv-9", REFUSE, lambda lay: lay.set("llama.attention.head_count_kv", U32, 9)),
        ("head_count_kv-2^31", REFUSE, lambda lay: lay.set("llama.attention.head_count_kv", U32, 2**31)),
        ("key_length-65", REFUSE, lambda lay: lay.set("llama.attention.key_length", U32, 65)),
        ("key_length-0", REFUSE, lambda lay: lay.set("llama.attention.key_length", U32, 0)),
        ("rope.dimension_count-0", REFUSE, lambda lay: lay.set("llama.rope.dimension_count", U32, 0)),
        ("rope.dimension_count-65", REFUSE, lambda lay: lay.set("llama.rope.dimension_count", U32, 65)),
        ("rope.dimension_count-32", REFUSE, lambda lay: lay.set("llama.rope.dimension_count", U32, 32)),
        ("rope.dimension_count-63", REFUSE, lambda lay: lay.set("llama.rope.dimension_count", U32, 63)),
        ("rope.scaling.type-bogus", REFUSE, lambda lay: lay.set("llama.rope.scaling.type", STR, "bogus")),
        ("rope.scaling.type-none", ACCEPT, lambda lay: lay.set("llama.rope.scaling.type", STR, "none")),
        ("rope.freq_base-10000", ACCEPT, lambda lay: lay.set("llama.rope.freq_base", F32, 10000.0)),
        ("rope.freq_base-inf", REFUSE, lambda lay: lay.set("llama.rope.freq_base", F32, float("inf"))),
        ("rms_epsilon-nan", REFUSE, lambda lay: lay.set("llama.attention.layer_norm_rms_epsilon", F32, float("nan"))),
        ("rms_epsilon-missing", REFUSE, lambda lay: lay.drop("llama.attention.layer_norm_rms_epsilon")),
        ("rms_epsilon-1e-6", ACCEPT, lambda lay: lay.set("llama.attention.layer_norm_rms_epsilon", F32, 1e-6)),
        ("rms_epsilon-negative", REFUSE, lambda lay: lay.set("llama.attention.layer_norm_rms_epsilon", F32, -1.0)),
        ("rms_epsilon-0", ACCEPT, lambda lay: lay.set("llama.attention.layer_norm_rms_epsilon", F32, 0.0)),
        ("expert_count-8", REFUSE, lambda lay: lay.set("llama.expert_count", U32, 8)),
        (
            "expert_used-9-of-8",
            REFUSE,
            lambda lay: lay.set("llama.expert_count", U32, 8).set("llama.expert_used_count", U32, 9),
        ),
        ("expert_used-without-experts", REFUSE, lambda lay: lay.set("llama.expert_used_count", U32, 2)),
        ("expert_count-2000", REFUSE, lambda lay: lay.set("llama.expert_count", U32, 2000)),
        ("nextn_predict_layers-31", REFUSE, lambda lay: lay.set("llama.nextn_predict_layers", U32, 31)),
        ("vocab_size-max", ACCEPT, lambda lay: lay.set("llama.vocab_size", U32, 2**32 - 1)),
        ("alignment-0", REFUSE, lambda lay: lay.set("general.alignment", U32, 0)),
        ("alignment-3", REFUSE, lambda lay: lay.set("general.alignment", U32, 3)),
        ("alignment-2^31", REFUSE, lambda lay: lay.set("general.alignment", U32, 2**31)),
        ("alignment-64", ACCEPT, lambda lay: lay.set("general.alignment", U32, 64).relayout(64)),
        ("alignment-4096-not-applied", REFUSE, lambda lay: lay.set("general.alignment", U32, 4096)),
        ("bos-out-of-vocabulary", REFUSE, lambda lay: lay.set("tokenizer.ggml.bos_token_id", U32, 49152)),
        ("padding-max", REFUSE, lambda lay: lay.set("tokenizer.ggml.padding_token_id", U32, 2**32 - 1)),
        ("eos-0", ACCEPT, lambda lay: lay.set("tokenizer.ggml.eos_token_id", U32, 0)),
        ("add_bos-true", ACCEPT, lambda lay: lay.set("tokenizer.ggml.add_bos_token", BOOL, True)),
        ("token_type-short", REFUSE, lambda lay: lay.set("tokenizer.ggml.token_type", ARR, (I32, [1] * 49151))),
        ("scores-short", REFUSE, lambda lay: lay.set("tokenizer.ggml.scores", ARR, (F32, [0.0] * 10))),
        ("scores-full", ACCEPT, lambda lay: lay.set("tokenizer.ggml.scores", ARR, (F32, [0.0] * 49152))),
        ("tokens-duplicate", REFUSE, with_tokens(dup)),
        ("tokens-one-renamed", ACCEPT, with_tokens(fresh)),
        ("tokens-one-empty", ACCEPT, with_tokens(empty)),
        ("tokens-one-short", REFUSE, with_tokens(lambda items: items.pop())),
        ("tokens-empty", REFUSE, lambda lay: lay.set("tokenizer.ggml.tokens", ARR, (STR, []))),
        ("tokens-missing", REFUSE, lambda lay: lay.drop("tokenizer.ggml.tokens")),
        ("tokenizer-bogus", REFUSE, lambda lay: lay.set("tokenizer.ggml.model", STR, "bogus")),
        ("tokenizer-none", REFUSE, lambda lay: lay.set("tokenizer.ggml.model", STR, "none")),
        ("tokenizer-llama", REFUSE, lambda lay: lay.set("tokenizer.ggml.model", STR, "llama")),
        ("tokenizer-missing", REFUSE, lambda lay: lay.drop("tokenizer.ggml.model")),
        ("pre-tokenizer-bogus", REFUSE, lambda lay: lay.set("tokenizer.ggml.pre", STR, "bogus")),
        ("pre-tokenizer-default", ACCEPT, lambda lay: lay.set("tokenizer.ggml.pre", STR, "default")),
        ("merges-missing", REFUSE, lambda lay: lay.drop("tokenizer.ggml.merges")),
        ("architecture-bogus", REFUSE, lambda lay: lay.set("general.architecture", STR, "bogus")),
        ("architecture-gemma3", REFUSE, lambda lay: lay.set("general.architecture", STR, "gemma3")),
        ("architecture-empty", REFUSE, lambda lay: lay.set("general.architecture", STR, "")),
        ("architecture-missing", REFUSE, lambda lay: lay.drop("general.architecture")),
        ("name-other", ACCEPT, lambda lay: lay.set("general.name", STR, "Somebody's model")),
        ("name-invalid-utf8", ACCEPT, lambda lay: lay.set("general.name", STR, b"caf\xe9 \xff")),
        ("name-10k", ACCEPT, lambda lay: lay.set("general.name", STR, "x" * 10_000)),
        ("name-missing", ACCEPT, lambda lay: lay.drop("general.name")),
        ("file_type-7", ACCEPT, lambda lay: lay.set("general.file_type", U32, 7)),
        ("file_type-unknown", ACCEPT, lambda lay: lay.set("general.file_type", U32, 9999)),
        ("unknown-key-strings", ACCEPT, lambda lay: lay.set("fuzz.extra", ARR, (STR, ["a"] * 1000))),
        ("unknown-key-bool-array", ACCEPT, lambda lay: lay.set("fuzz.flags", ARR, (BOOL, [True, False]))),
        ("unknown-key-nan", ACCEPT, lambda lay: lay.set("fuzz.nan", F32, float("nan"))),
        ("unknown-key-newline", ACCEPT, lambda lay: lay.set("fuzz\nkey", STR, "line one\nline two")),
        ("empty-key", REFUSE, lambda lay: lay.set("", U32, 1)),
        ("duplicate-key", REFUSE, lambda lay: lay.kvs.append(deepcopy(lay.kv("llama.block_count")))),
        ("split-count-2", REFUSE, lambda lay: lay.set("split.count", U16, 2)),
        ("split-part-2-of-3", REFUSE, lambda lay: lay.set("split.count", U16, 3).set("split.no", U16, 1)),
        ("split-part-1-of-1", ACCEPT, lambda lay: lay.set("split.count", U16, 1).set("split.no", U16, 0)),
        (
            "chat_template-other",
            ACCEPT,
            lambda lay: lay.set("tokenizer.chat_template", STR, "{{ messages[0]['content'] }}"),
        ),
        ("version-2", ACCEPT, lambda lay: setattr(lay, "version", 2)),
        ("version-1", REFUSE, lambda lay: setattr(lay, "version", 1)),
        ("version-4", REFUSE, lambda lay: setattr(lay, "version", 4)),
        ("version-huge", REFUSE, lambda lay: setattr(lay, "version", 2**31)),
        ("magic", REFUSE, lambda lay: setattr(lay, "magic", b"GGUG")),
        ("n_kv-less", REFUSE, lambda lay: setattr(lay, "n_kv", len(lay.kvs) - 1)),
        ("n_kv-more", REFUSE, lambda lay: setattr(lay, "n_kv", len(lay.kvs) + 1)),
        ("n_kv-huge", REFUSE, lambda lay: setattr(lay, "n_kv", 2**62)),
        ("n_tensors-less", REFUSE, lambda lay: setattr(lay, "n_tensors", len(lay.tensors) - 1)),
        ("n_tensors-more", REFUSE, lambda lay: setattr(lay, "n_tensors", len(lay.tensors) + 1)),
        ("n_tensors-huge", REFUSE, lambda lay: setattr(lay, "n_tensors", 2**40)),
        ("n_tensors-0", REFUSE, lambda lay: (setattr(lay, "tensors", []), setattr(lay, "data_size", 0))),
    ]
    return [
        Mutant(
            f"value-{name}",
            "value out of range" if expect == REFUSE else "harmless change",
            expect,
            _structured(change),
        )
        for name, expect, change in cases
    ]


def _tensor_mutants() -> list[Mutant]:
    last = len(BASE.layout.tensors) - 1
    cases: list[tuple[str, Callable[[Layout], object]]] = []
    for i in (0, 1, 100, last):
        cases += [
            (f"{i}-offset-past-end", _tensor(i, offset=BASE.file_size)),
            (f"{i}-offset-gap", _tensor(i, offset=lambda t: t.offset + 32)),
            (f"{i}-offset-misaligned", _tensor(i, offset=lambda t: t.offset + 1)),
            (f"{i}-offset-huge", _tensor(i, offset=2**63)),
            (f"{i}-type-unknown", _tensor(i, ttype=99)),
            (f"{i}-type-removed-q4_0_4_4", _tensor(i, ttype=31)),
            (f"{i}-type-huge", _tensor(i, ttype=2**31)),
            (f"{i}-type-f16", _tensor(i, ttype=int(GGMLQuantizationType.F16))),
            (f"{i}-dim-0", _tensor(i, dims=lambda t: [0, *t.dims[1:]])),
            (f"{i}-dim-huge", _tensor(i, dims=lambda t: [t.dims[0], 2**62])),
            (f"{i}-dims-overflow", _tensor(i, dims=[2**32, 2**32, 2**32])),
            (f"{i}-dim-negative", _tensor(i, dims=lambda t: [t.dims[0], 2**64 - 32])),
            (f"{i}-n_dims-5", _tensor(i, dims=[32, 1, 1, 1, 1])),
            (f"{i}-n_dims-0", _tensor(i, dims=[])),
        ]
    cases += [
        ("offset-overlap", _tensor(2, offset=lambda t: t.offset - 32)),
        ("name-duplicate", lambda lay: setattr(lay.tensors[1], "name", lay.tensors[0].name)),
        ("name-64-bytes", _tensor(5, name=b"blk.0." + b"x" * 58)),
        ("name-renamed", _tensor(8, name=lambda t: t.name.replace(b"attn_q", b"attn_x"))),
        ("name-beyond-layers", _tensor(8, name=lambda t: t.name.replace(b"blk.0.", b"blk.30."))),
        ("name-invalid-utf8", _tensor(8, name=b"blk.0.\xff\xfe.weight")),
        ("name-empty", _tensor(8, name=b"")),
        ("shape-swapped", _tensor(0, dims=lambda t: list(reversed(t.dims)))),
        ("token_embd-wider", _tensor(0, dims=lambda t: [t.dims[0] + 32, t.dims[1]])),
    ]
    return [Mutant(f"tensor-{name}", "tensor table", REFUSE, _structured(change)) for name, change in cases]


def _truncation_mutants() -> list[Mutant]:
    data_offset = len(BASE.header)
    cuts = {3, 8, 16, 23, 24}
    cuts |= set(BASE.kv_ends[:-1])  # at every metadata boundary
    cuts |= {end - 3 for end in BASE.kv_ends}  # inside every metadata value
    cuts |= set(BASE.tensor_ends[::16]) | {end - 5 for end in BASE.tensor_ends[8::16]}  # in the tensor table
    cuts |= {
        BASE.tensor_ends[-1],
        data_offset,
        data_offset + 1,
        (data_offset + BASE.file_size) // 2,
        BASE.file_size - 1,
    }
    return [Mutant(f"truncated-at-{cut}", "truncated", REFUSE, _truncated(cut)) for cut in sorted(cuts)]


def _flip_mutants(rng: random.Random) -> list[Mutant]:
    """Random bytes written at random places: near the start (general and llama keys), in the
    tensor table, and anywhere in the header (mostly the vocabulary)."""
    table_start = BASE.kv_ends[-1]
    regions = {"start": (4, 2600), "tensor-table": (table_start, len(BASE.header)), "anywhere": (4, len(BASE.header))}
    out = []
    for region, (low, high) in regions.items():
        for n in range(60):
            edits = [
                (rng.randrange(low, high), rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256))))
                for _ in range(rng.randint(1, 3))
            ]

            def edit(head: bytearray, edits=edits) -> None:
                for at, value in edits:
                    head[at] = value

            out.append(Mutant(f"bytes-{region}-{n}", "random bytes", None, _bytes(edit)))
    return out


def all_mutants() -> list[Mutant]:
    """Every mutant, in a fixed order (the same in every process)."""
    rng = random.Random(SEED)
    return _typed_mutants() + _range_mutants() + _tensor_mutants() + _truncation_mutants() + _flip_mutants(rng)


MUTANTS = all_mutants()


def write_mutant(index: int | str, folder: str | Path) -> Path:
    """Write mutant `index` (sparse: only its header takes disk space) and return its path."""
    mutant = MUTANTS[int(index)]
    head, size = mutant.build()
    path = Path(folder) / f"mutant-{int(index):04d}.gguf"
    with path.open("wb") as f:
        f.write(head[:size])
        f.truncate(size)
    return path


# --- what the fuzz cases call, in the forked child ----------------------------------------------


def _cli(argv: list[str], path: Path) -> None:
    from llamadesk.app.cli import main

    try:
        code = main(argv)
    finally:
        path.unlink(missing_ok=True)
    sys.exit(code)


def info(index: str, folder: str) -> None:
    """`llamadesk info` on a mutant; exits with its code."""
    path = write_mutant(index, folder)
    _cli(["info", str(path)], path)


def info_json(index: str, folder: str) -> None:
    """`llamadesk info --json` on a mutant; what it prints must parse as JSON (else a traceback)."""
    from llamadesk.app.cli import main

    path = write_mutant(index, folder)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            code = main(["info", str(path), "--json"])
    finally:
        path.unlink(missing_ok=True)
    if code == 0:
        print(json.loads(printed.getvalue())["architecture"])
    sys.exit(code)


# Settings that change what a model says are pinned, and the context kept small: a mutant's
# answer is not checked, only how the command ends.
CHAT_FLAGS = ["--temperature", "0", "--seed", "1", "--max-tokens", "8", "--threads", "1", "--ctx", "256"]


def chat(index: str, folder: str) -> None:
    """`llamadesk chat` with a prompt on a mutant; exits with its code."""
    path = write_mutant(index, folder)
    _cli(["chat", "-m", str(path), *CHAT_FLAGS, "Say hello."], path)


def quantize(index: str, folder: str) -> None:
    """`llamadesk quantize` on a mutant; exits with its code (and must leave no output behind)."""
    path = write_mutant(index, folder)
    output = path.with_name(f"{path.stem}-Q8_0.gguf")
    try:
        _cli(["quantize", str(path), "-t", "Q8_0", "--allow-requantize", "--threads", "1", "-o", str(output)], path)
    finally:
        assert not output.exists(), "a refused quantize left its output"


def load(index: str, folder: str) -> None:
    """Engine.load on a mutant (a LlamadeskError becomes the case's exit code)."""
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import LoadSettings

    path = write_mutant(index, folder)
    try:
        with Engine.load(path, LoadSettings(n_ctx=256, n_threads=1)):
            pass
    finally:
        path.unlink(missing_ok=True)


def list_library() -> None:
    """The listing the TUI's model manager shows (it must not raise on any file in the library)."""
    from llamadesk.app.library.catalog import list_models

    print(len(list_models()))
