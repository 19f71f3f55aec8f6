"""Byte-level builders for hostile checkpoint files: zips, pickles, safetensors, protobufs.

Everything is written with the standard library (struct, pickle, zlib), so a test states exactly
which bytes a reader gets: a zip whose directory lies about a member's size, a pickle whose
opcodes no Pickler would write, a safetensors header of any shape. torch is used only to name
the globals a real torch.save pickle names (its classes and rebuild functions), never to read.
"""

from __future__ import annotations

import collections
import io
import json
import pickle
import random
import struct
import zlib
from dataclasses import dataclass

# -- zip ----------------------------------------------------------------------------------------


@dataclass
class Member:
    """One zip member, with every header field a test may want to lie about."""

    name: str
    data: bytes  # as stored (already compressed when method != 0)
    method: int = 0  # 0 stored, 8 deflate
    size: int | None = None  # the uncompressed size the headers claim (default: len(data))
    crc: int | None = None  # default: the CRC of data
    flags: int = 0
    name_bytes: bytes | None = None  # to write a name that is not valid UTF-8
    header_offset: int | None = None  # what the central directory claims (default: the truth)


def zip_bytes(members: list[Member], directory_size: int | None = None) -> bytes:
    """A zip file of `members`: local headers and data, then the central directory and end record."""
    out, central = bytearray(), bytearray()
    for m in members:
        name = m.name_bytes if m.name_bytes is not None else m.name.encode()
        size = len(m.data) if m.size is None else m.size
        crc = zlib.crc32(m.data) if m.crc is None else m.crc
        offset = len(out)
        out += struct.pack(
            "<4s5H3I2H", b"PK\x03\x04", 20, m.flags, m.method, 0, 0, crc, len(m.data), size, len(name), 0
        )
        out += name + m.data
        central += struct.pack(
            "<4s6H3I5HII",
            b"PK\x01\x02",
            20,
            20,
            m.flags,
            m.method,
            0,
            0,
            crc,
            len(m.data),
            size,
            len(name),
            0,
            0,
            0,
            0,
            0,
            offset if m.header_offset is None else m.header_offset,
        )
        central += name
    start = len(out)
    out += central
    claimed = len(central) if directory_size is None else directory_size
    out += struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(members), len(members), claimed, start, 0)
    return bytes(out)


def zip_members(data: bytes) -> list[Member]:
    """The members of a zip (as torch.save writes it), uncompressed, to be rebuilt with changes."""
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [Member(info.filename, z.read(info)) for info in z.infolist()]


def deflated(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def zeros_bomb(size: int, prefix: bytes = b"") -> tuple[bytes, int]:
    """A raw deflate stream that inflates to `prefix` then `size` zero bytes, and the CRC of all of it.

    Built from one compressed MiB repeated: a full flush makes each copy independent of the one
    before it, so the stream is ~1/1000 of `size` and takes a second, not a minute, to make.
    """
    mib = bytes(1 << 20)
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = head.compress(prefix) + head.flush(zlib.Z_FULL_FLUSH)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(prefix)
    for _ in range(size >> 20):
        crc = zlib.crc32(mib, crc)
    return stream + block * (size >> 20) + b"\x03\x00", crc  # \x03\x00: an empty final block


def torch_zip(data_pkl: bytes, storages: dict[str, bytes], pickle_method: int = 0, extra: list[Member] = ()) -> bytes:
    """A torch.save-style zip: archive/data.pkl, archive/byteorder, archive/data/<key>."""
    pkl = deflated(data_pkl) if pickle_method == 8 else data_pkl
    members = [
        Member("archive/data.pkl", pkl, method=pickle_method, size=len(data_pkl), crc=zlib.crc32(data_pkl)),
        Member("archive/byteorder", b"little"),
        *(Member(f"archive/data/{key}", raw) for key, raw in storages.items()),
        *extra,
    ]
    return zip_bytes(members)


# -- pickles ------------------------------------------------------------------------------------


class Storage:
    """Pickles as torch.save's persistent id of a storage: ("storage", <class>, key, "cpu", numel)."""

    def __init__(self, key="0", numel=16, kind=None, location="cpu", pid=None):
        import torch

        self.pid = pid if pid is not None else ("storage", kind or torch.FloatStorage, key, location, numel)


class Tensor:
    """Pickles as torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()).

    `state` makes the pickle follow the call with BUILD (what a (func, args, state) reduce writes).
    """

    def __init__(self, storage, offset=0, size=(4, 4), stride=(4, 1), state=None):
        self.storage, self.offset, self.size, self.stride, self.state = storage, offset, size, stride, state

    def __reduce__(self):
        import torch

        args = (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict())
        if self.state is None:
            return torch._utils._rebuild_tensor_v2, args
        return torch._utils._rebuild_tensor_v2, args, self.state


class _TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, Storage) else None


def pickled(state, protocol: int = 2) -> bytes:
    buffer = io.BytesIO()
    _TorchPickler(buffer, protocol=protocol).dump(state)
    return buffer.getvalue()


# Hand-written opcodes, for pickles no Pickler writes.
PROTO2 = pickle.PROTO + b"\x02"


def op_text(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    return pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw


def op_global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def op_put(index: int) -> bytes:
    return pickle.LONG_BINPUT + struct.pack("<I", index)


def op_get(index: int) -> bytes:
    return pickle.LONG_BINGET + struct.pack("<I", index)


def op_int(value: int) -> bytes:
    return pickle.BININT + struct.pack("<i", value)


def raw_tensor_dict(name: str, offset: bytes, size: bytes, stride: bytes, pid: bytes | None = None) -> bytes:
    """{name: _rebuild_tensor_v2(storage, offset, size, stride)} from opcodes, each argument any opcodes.

    For arguments no Pickler can write, such as a tuple nested 100,000 deep.
    """
    storage = (
        pickle.MARK
        + op_text("storage")
        + op_global("torch", "FloatStorage")
        + op_text("0")
        + op_text("cpu")
        + op_int(16)
        + pickle.TUPLE
    )
    return (
        PROTO2
        + pickle.EMPTY_DICT
        + op_text(name)
        + op_global("torch._utils", "_rebuild_tensor_v2")
        + pickle.MARK
        + (storage if pid is None else pid)
        + pickle.BINPERSID
        + offset
        + size
        + stride
        + pickle.TUPLE
        + pickle.REDUCE
        + pickle.SETITEM
        + pickle.STOP
    )


def deep_tuple(depth: int) -> bytes:
    return pickle.EMPTY_TUPLE + pickle.TUPLE1 * depth


def after_proto(prefix: bytes, body: bytes) -> bytes:
    """`prefix` opcodes spliced in right after the PROTO of pickle `body`."""
    assert body[:2] == PROTO2
    return PROTO2 + prefix + body[2:]


def build_on_global(module: str, name: str, state: bytes) -> bytes:
    """Opcodes that BUILD (set attributes of) an allow-listed global, then drop it from the stack."""
    return op_global(module, name) + state + pickle.BUILD + pickle.POP


def dict_state(**items: str) -> bytes:
    out = pickle.EMPTY_DICT
    for key, value in items.items():
        out += op_text(key) + op_text(value) + pickle.SETITEM
    return out


def nested_dicts(depth: int) -> bytes:
    """{"a": {"a": ... {} ...}} nested `depth` deep, without recursion in the writer."""
    return (
        PROTO2 + (pickle.EMPTY_DICT + op_text("a")) * depth + pickle.EMPTY_DICT + pickle.SETITEM * depth + pickle.STOP
    )


def cyclic_dict() -> bytes:
    return PROTO2 + pickle.EMPTY_DICT + op_put(0) + op_text("self") + op_get(0) + pickle.SETITEM + pickle.STOP


def shared_dicts(levels: int, width: int, leaf: bytes) -> bytes:
    """The "billion laughs": each level a dict whose `width` keys all name the level below.

    Its size grows with levels * width, the paths through it with width ** levels.
    """
    out = bytearray(PROTO2 + leaf + op_put(0))
    for level in range(1, levels + 1):
        out += pickle.EMPTY_DICT + op_put(level) + pickle.MARK
        for key in range(width):
            out += op_text(f"k{key}") + op_get(level - 1)
        out += pickle.SETITEMS + pickle.POP
    out += op_get(levels) + pickle.STOP
    return bytes(out)


def deep_tuple_key(depth: int) -> bytes:
    """{((((...)))): 1}: a dict key whose hash recurses `depth` deep in C."""
    return (
        PROTO2
        + pickle.EMPTY_DICT
        + pickle.EMPTY_TUPLE
        + pickle.TUPLE1 * depth
        + op_int(1)
        + pickle.SETITEM
        + pickle.STOP
    )


def shared_tuple_key(levels: int) -> bytes:
    """{t: 1} with t_i = (t_{i-1}, t_{i-1}): hashing it visits 2 ** levels tuples."""
    out = bytearray(PROTO2 + pickle.EMPTY_DICT + pickle.EMPTY_TUPLE + op_put(0))
    for level in range(1, levels + 1):
        out += pickle.POP + op_get(level - 1) + op_get(level - 1) + pickle.TUPLE2 + op_put(level)
    out += op_int(1) + pickle.SETITEM + pickle.STOP
    return bytes(out)


# -- safetensors --------------------------------------------------------------------------------


def safetensors_bytes(header: dict | str | bytes, data: bytes = b"", header_len: int | None = None) -> bytes:
    if isinstance(header, dict):
        header = json.dumps(header)
    raw = header.encode("utf-8", "surrogatepass") if isinstance(header, str) else header
    return struct.pack("<Q", len(raw) if header_len is None else header_len) + raw + data


# -- protobuf (SentencePiece) -------------------------------------------------------------------


def pb_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def pb_field(number: int, value: int | bytes, wire: int | None = None) -> bytes:
    """A protobuf field: varint for ints (wire 0), length-delimited for bytes (wire 2), or fixed32 (wire 5)."""
    if wire == 5:
        return pb_varint(number << 3 | 5) + struct.pack("<I", value)
    if isinstance(value, int):
        return pb_varint(number << 3) + pb_varint(value)
    return pb_varint(number << 3 | 2) + pb_varint(len(value)) + value


# -- mutation -----------------------------------------------------------------------------------

# Bytes that turn one valid token into another: JSON and pickle syntax, digits, extremes.
INTERESTING = b'"[]{}-09.e,:\\\x00\xff\x7f\x80X}q(.K'


def mutants(data: bytes, region: range, count: int, seed: int) -> list[bytes]:
    """`count` copies of `data`, each with 1-3 bytes inside `region` flipped or replaced."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        mutant = bytearray(data)
        for _ in range(rng.choice((1, 1, 2, 3))):
            pos = rng.choice(region)
            how = rng.random()
            if how < 0.35:
                mutant[pos] = rng.randrange(256)
            elif how < 0.7:
                mutant[pos] ^= 1 << rng.randrange(8)
            else:
                mutant[pos] = rng.choice(INTERESTING)
        out.append(bytes(mutant))
    return out


# Shared by the checkpoint and adapter fuzz tests.
ENV = {"HF_HUB_OFFLINE": "1"}  # nothing here may reach the network
EMBEDDING = "model.embed_tokens.weight"  # the tensor the crafted safetensors headers name


def report_outcomes(results: dict[str, dict]) -> None:
    """Outcome counts per class (the part of a case id before '/'), for the README's Robustness table."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for case_id, r in results.items():
        counts[case_id.split("/")[0]][f"exit {r['code']}" if r["status"] == "exit" else r["status"]] += 1
    for kind, outcome in sorted(counts.items()):
        print(f"{kind}: {sum(outcome.values())} runs, {dict(outcome)}")


def hostile_safetensors_files() -> dict[str, bytes]:
    entry = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}

    def with_entry(**changes) -> bytes:
        return safetensors_bytes({EMBEDDING: {**entry, **changes}}, bytes(32))

    return {
        "safetensors-json/10000-deep-arrays": safetensors_bytes('{"a":' + "[" * 10_000 + "]" * 10_000 + "}"),
        "safetensors-json/100000-deep-objects": safetensors_bytes('{"a":' * 100_000 + "1" + "}" * 100_000),
        "safetensors-json/an-array": safetensors_bytes("[1, 2]"),
        "safetensors-json/not-utf8": safetensors_bytes(b'{"\xff": 1}'),
        "safetensors-json/syntax-error": safetensors_bytes('{"a": }'),
        "safetensors-json/5000-digit-number": safetensors_bytes(
            '{"a": {"dtype": "F32", "shape": [1' + "0" * 5000 + '], "data_offsets": [0, 4]}}'
        ),
        "safetensors-header/length-past-end": safetensors_bytes({}, header_len=10**6),
        "safetensors-header/length-2^63": safetensors_bytes({}, header_len=2**63),
        "safetensors-header/length-zero": safetensors_bytes("", bytes(16)),
        "safetensors-header/seven-bytes": bytes(7),
        "safetensors-header/empty-file": b"",
        "safetensors-dtype/a-list": with_entry(dtype=["F32"]),
        "safetensors-dtype/null": with_entry(dtype=None),
        "safetensors-dtype/a-number": with_entry(dtype=5),
        "safetensors-dtype/an-object": with_entry(dtype={"F32": 1}),
        "safetensors-dtype/int64": with_entry(dtype="I64", shape=[2], data_offsets=[0, 16]),
        "safetensors-dtype/newline": with_entry(dtype="F\n32"),
        "safetensors-offsets/text": with_entry(data_offsets=["0", "16"]),
        "safetensors-offsets/null": with_entry(data_offsets=None),
        "safetensors-offsets/floats": with_entry(data_offsets=[0.0, 16.0]),
        "safetensors-offsets/negative": with_entry(data_offsets=[-16, 0]),
        "safetensors-offsets/reversed": with_entry(data_offsets=[16, 0]),
        "safetensors-offsets/three": with_entry(data_offsets=[0, 8, 16]),
        "safetensors-offsets/booleans": with_entry(shape=[1], data_offsets=[False, True]),
        "safetensors-offsets/an-object": with_entry(data_offsets={"0": 16}),
        "safetensors-offsets/missing": safetensors_bytes({EMBEDDING: {"dtype": "F32", "shape": [2, 2]}}, bytes(32)),
        "safetensors-offsets/past-end": with_entry(shape=[4, 2**20], data_offsets=[0, 2**24]),
        "safetensors-shape/beyond-uint64": with_entry(shape=[2**70, 2**70]),
        "safetensors-shape/product-wrapping-int64": with_entry(shape=[2**32, 2**32, 4], data_offsets=[0, 0]),
        "safetensors-shape/negative": with_entry(shape=[-2, -2]),
        "safetensors-shape/text": with_entry(shape=["2", "2"]),
        "safetensors-shape/floats": with_entry(shape=[2.0, 2.0]),
        "safetensors-shape/an-int": with_entry(shape=4),
        "safetensors-shape/null": with_entry(shape=None),
        "safetensors-shape/twenty-dims": with_entry(shape=[1] * 19 + [4]),
        "safetensors-ranges/overlapping-fully": safetensors_bytes(
            {EMBEDDING: entry, "model.norm.weight": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, bytes(32)
        ),
        "safetensors-ranges/overlapping-partly": safetensors_bytes(
            {EMBEDDING: entry, "model.norm.weight": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, bytes(32)
        ),
        "safetensors-ranges/not-shape-times-dtype": with_entry(data_offsets=[0, 12]),
        "safetensors-ranges/entry-not-an-object": safetensors_bytes({EMBEDDING: "F32"}, bytes(32)),
        "safetensors-names/newline": safetensors_bytes({"model.embed\ntokens.weight": entry}, bytes(32)),
        "safetensors-names/10000-chars": safetensors_bytes({"a" * 10_000: entry}, bytes(32)),
    }
