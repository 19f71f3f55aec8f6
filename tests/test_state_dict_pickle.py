"""The state-dict unpickler: what Python's pickler and torch.save write loads, anything else is refused.

Plain values pickled by `pickle.dumps` (protocols 2 to 5) must load to the same values, with shared
and self-referencing containers kept shared. Torch's own `data.pkl` must load to the tensor views
torch reports. Every refusal is built opcode by opcode, the way a hostile or damaged file would be.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import pickletools
import random
import struct
import zipfile
from typing import Any

import pytest
import torch

from llamadesk.app.core.errors import BadInputError
from llamadesk.convert import state_dict_pickle
from llamadesk.convert.state_dict_pickle import (
    ALLOWED_GLOBALS,
    MAX_DIMS,
    MAX_NESTING,
    PickledTensor,
    StateDictLoader,
    StorageRef,
    UnsafePickleError,
    _what,
    walk_state_dict,
)

SOURCE = "x.bin"
NOT_A_STATE_DICT = f"{SOURCE}: its pickle is not a state dict of tensors ("


# -- a small assembler for hand-made pickles ------------------------------------------------------


def text(value: str) -> bytes:
    encoded = value.encode("utf-8", "surrogatepass")
    return pickle.BINUNICODE + struct.pack("<I", len(encoded)) + encoded


def num(value: int) -> bytes:
    return pickle.BININT + struct.pack("<i", value)


def glob(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def tup(*parts: bytes) -> bytes:
    return pickle.MARK + b"".join(parts) + pickle.TUPLE


def call(func: bytes, *args: bytes) -> bytes:
    return func + tup(*args) + pickle.REDUCE


def pk(*parts: bytes, protocol: int = 2) -> bytes:
    return pickle.PROTO + bytes([protocol]) + b"".join(parts) + pickle.STOP


ORDERED_DICT = call(glob("collections", "OrderedDict"))
REBUILD_TENSOR = glob("torch._utils", "_rebuild_tensor_v2")
REBUILD_PARAMETER = glob("torch._utils", "_rebuild_parameter")
REBUILD_FROM_TYPE = glob("torch._tensor", "_rebuild_from_type_v2")


def persistent_id(*fields: bytes) -> bytes:
    return tup(*fields) + pickle.BINPERSID


def storage(dtype: str = "FloatStorage", key: str = "0", numel: int = 4) -> bytes:
    """What torch.save writes for a storage: BINPERSID of ("storage", class, key, location, numel)."""
    return persistent_id(text("storage"), glob("torch", dtype), text(key), text("cpu"), num(numel))


def ints(*values: int) -> bytes:
    return tup(*(num(v) for v in values))


def tensor_args(store: bytes | None = None, offset: int = 0, shape=(2, 2), stride=(2, 1)) -> tuple[bytes, ...]:
    return (
        storage() if store is None else store,
        num(offset),
        ints(*shape),
        ints(*stride),
        pickle.NEWFALSE,
        ORDERED_DICT,
    )


def tensor(**kwargs) -> bytes:
    return call(REBUILD_TENSOR, *tensor_args(**kwargs))


def state_dict(**tensors: bytes) -> bytes:
    return pickle.EMPTY_DICT + b"".join(text(name) + ops + pickle.SETITEM for name, ops in tensors.items())


def load(data: bytes) -> Any:
    return StateDictLoader(data, SOURCE).load()


def refusal(data: bytes) -> str:
    """The message of the BadInputError (not UnsafePickleError) that loading `data` raises."""
    with pytest.raises(BadInputError) as caught:
        load(data)
    assert caught.type is BadInputError
    message = str(caught.value)
    assert message.startswith(NOT_A_STATE_DICT) and message.endswith(")") and "\n" not in message
    return message


F32_2X2 = PickledTensor(StorageRef("F32", "0", 4), 0, (2, 2), (2, 1))


# -- plain values round-trip through Python's own pickler ---------------------------------------

LEAVES = [
    0,
    1,
    255,
    256,
    65535,
    65536,
    -1,
    -(2**31),
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    2**63,
    2**127 - 1,  # the largest LONG1 payload accepted: 16 bytes
    -(2**127),
    0.0,
    -0.0,
    1.5,
    -1e308,
    5e-324,
    float("inf"),
    float("nan"),
    True,
    False,
    None,
    "",
    "a",
    "é€😀",
    "x" * 255,
    "y" * 256,  # past SHORT_BINUNICODE
    "lone \ud800 surrogate",
    b"",
    b"\x00\xff",
    b"z" * 255,
    b"w" * 256,  # past SHORT_BINBYTES
]


def random_value(rng: random.Random, depth: int, shared: list, with_bytes: bool) -> Any:
    """Nested dicts (str and int keys), OrderedDicts, lists and tuples of 0-5 items, sometimes shared."""
    if depth == 0 or rng.random() < 0.25:
        return rng.choice([v for v in LEAVES if with_bytes or type(v) is not bytes])
    if shared and rng.random() < 0.15:
        return rng.choice(shared)
    kind = rng.choice(["dict", "ordered", "list", "tuple"])
    items = [random_value(rng, depth - 1, shared, with_bytes) for _ in range(rng.randint(0, 5))]
    if kind == "tuple":
        return tuple(items)
    if kind == "list":
        shared.append(items)
        return items
    keys = [rng.choice([f"k{rng.randint(0, 9)}", rng.randint(-3, 300)]) for _ in items]
    made = (
        dict(zip(keys, items, strict=True))
        if kind == "dict"
        else collections.OrderedDict(zip(keys, items, strict=True))
    )
    shared.append(made)
    return made


def assert_same(expected: Any, got: Any, seen: dict[int, Any] | None = None) -> None:
    """Equal with exact types (True is not 1), float bits (nan, -0.0), and shared containers kept shared."""
    seen = {} if seen is None else seen
    assert type(got) is type(expected), f"{type(got).__name__} loaded for a {type(expected).__name__}"
    if type(expected) in (list, dict, collections.OrderedDict):
        if id(expected) in seen:
            assert got is seen[id(expected)], "a shared container was loaded as two copies"
            return
        seen[id(expected)] = got
    if type(expected) is float:
        assert struct.pack(">d", got) == struct.pack(">d", expected)
    elif type(expected) in (list, tuple):
        assert len(got) == len(expected)
        for e, g in zip(expected, got, strict=True):
            assert_same(e, g, seen)
    elif type(expected) in (dict, collections.OrderedDict):
        assert [(type(k), k) for k in got] == [(type(k), k) for k in expected]
        for key in expected:
            assert_same(expected[key], got[key], seen)
    else:
        assert got == expected


def many_memo_entries() -> list:
    lists = [[i] for i in range(300)]  # over 256 memo entries: LONG_BINPUT, and LONG_BINGET to reach them
    return [lists, lists[-1], lists[0], lists[150]]


def recursive_values() -> list:
    in_list: list = []
    in_list.append(in_list)
    in_dict: dict = {}
    in_dict["self"] = in_dict
    short: tuple = ([],)
    short[0].append(short)  # a tuple inside itself: pickle writes POP
    long: tuple = ([], 1, 2, 3)
    long[0].append(long)  # ... and POP_MARK for a tuple built with MARK
    return [in_list, in_dict, short, long]


def corpus(protocol: int) -> list:
    with_bytes = protocol >= 3  # protocol 2 pickles bytes by calling _codecs.encode (see below)
    values = [
        [v for v in LEAVES if with_bytes or type(v) is not bytes],
        {"model": {"a": [1, 2], 3: ("x", None, 1.0, True, b"" if with_bytes else "", -7)}, 0: {}},
        collections.OrderedDict([("z", 1), ("a", 2)]),
        many_memo_entries(),
    ]
    for seed in range(25):
        rng = random.Random(seed * 10 + protocol)
        values.append(random_value(rng, 5, [], with_bytes))
    return values


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_plain_values_round_trip_through_pickle_dumps(protocol):
    for value in corpus(protocol):
        assert_same(value, load(pickle.dumps(value, protocol=protocol)))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_containers_that_contain_themselves_load_as_the_same_objects(protocol):
    in_list, in_dict, short, long = load(pickle.dumps(recursive_values(), protocol=protocol))
    assert in_list[0] is in_list
    assert in_dict["self"] is in_dict
    assert short[0][0] is short
    assert long[0][0] is long and long[1:] == (1, 2, 3)


def test_the_round_trip_corpus_uses_every_opcode_the_loader_knows_but_the_hand_made_ones():
    """The round trip above is only worth something if Python's pickler wrote these opcodes."""
    used = set()
    for protocol in (2, 3, 4, 5):
        for value in [*corpus(protocol), recursive_values(), collections.OrderedDict(a=1)]:
            used |= {op.name for op, _, _ in pickletools.genops(pickle.dumps(value, protocol=protocol))}
    handled = {op.name for op in pickletools.opcodes if hasattr(StateDictLoader, f"_op_{op.name.lower()}")}
    # Python's pickler writes these only for what plain values never are (tensors, torch's metadata),
    # for integers past 255 bytes or values over 4 GB (LONG4, *8), or never (DUP).
    hand_made = {"BINPERSID", "BUILD", "DUP", "LONG4", "BINUNICODE8", "BINBYTES8"}
    assert handled - used <= hand_made
    assert {"LONG_BINPUT", "LONG_BINGET", "MEMOIZE", "LONG1", "BININT2", "FRAME", "POP", "POP_MARK"} <= used


def test_long_memo_indexes_are_read():
    memo_300 = pickle.LONG_BINPUT + struct.pack("<I", 300)
    got = load(pk(text("kept") + memo_300 + pickle.POP + pickle.LONG_BINGET + struct.pack("<I", 300)))
    assert got == "kept"


def test_an_ordered_dict_keeps_its_items_and_drops_its_attributes():
    """torch stores a state dict's `_metadata` as the OrderedDict's attribute (pickle BUILD)."""
    value = collections.OrderedDict(b=1, a=2)
    value._metadata = {"": {"version": 1}}
    for protocol in (2, 4):
        data = pickle.dumps(value, protocol=protocol)
        assert "BUILD" in {op.name for op, _, _ in pickletools.genops(data)}
        got = load(data)
        assert type(got) is collections.OrderedDict and list(got.items()) == [("b", 1), ("a", 2)]
        assert not hasattr(got, "_metadata")


@pytest.mark.parametrize(
    "state",
    [pickle.NONE, pickle.EMPTY_DICT + text("x") + num(1) + pickle.SETITEM, tup(pickle.NONE, pickle.EMPTY_DICT)],
    ids=["none", "dict", "pair"],
)
@pytest.mark.parametrize("target", [pickle.EMPTY_DICT, ORDERED_DICT], ids=["dict", "ordered"])
def test_build_on_a_dict_this_load_made_changes_nothing(target, state):
    got = load(pk(target + text("k") + num(5) + pickle.SETITEM + state + pickle.BUILD))
    assert got == {"k": 5} and not hasattr(got, "x")


def test_rarely_written_opcodes():
    assert load(pk(num(7), pickle.DUP, pickle.TUPLE2)) == (7, 7)
    assert load(pk(num(1), num(2), pickle.POP)) == 1
    assert load(pk(num(7), pickle.MARK, num(1), num(2), pickle.POP_MARK)) == 7
    assert load(pk(pickle.BININT2 + struct.pack("<H", 65535))) == 65535
    assert load(pk(pickle.LONG4 + struct.pack("<i", 2) + (-2).to_bytes(2, "little", signed=True))) == -2
    assert load(pk(pickle.LONG1 + b"\x00")) == 0
    assert load(pk(pickle.BINUNICODE8 + struct.pack("<Q", 4) + "日".encode() + b"!")) == "日!"
    assert load(pk(pickle.BINBYTES8 + struct.pack("<Q", 3) + b"abc")) == b"abc"
    assert load(pk(pickle.FRAME + struct.pack("<Q", 2) + pickle.NONE, protocol=4)) is None


def test_integers_up_to_16_bytes_load_and_longer_ones_are_refused():
    assert load(pickle.dumps(2**127 - 1)) == 2**127 - 1
    for big in (2**127, -(2**127) - 1, 2**200):
        assert f"an integer of {len(pickle.encode_long(big))} bytes" in refusal(pickle.dumps(big))
    assert "an integer of 17 bytes" in refusal(pk(pickle.LONG4 + struct.pack("<i", 17) + b"\x01" * 17))


def test_protocol_2_bytes_are_refused_as_a_call():
    with pytest.raises(UnsafePickleError, match=r"asks to run _codecs\.encode"):
        load(pickle.dumps(b"raw", protocol=2))


# -- tensors ------------------------------------------------------------------------------------


def torch_data_pkl(value: Any, protocol: int = 2) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer, pickle_protocol=protocol)
    with zipfile.ZipFile(buffer) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        return archive.read(name)


@pytest.mark.parametrize("protocol", [2, 4])
def test_torch_save_pickle_loads_to_the_views_torch_reports(protocol):
    base = torch.arange(12.0).reshape(3, 4)
    sd = collections.OrderedDict(
        transposed=base.t(),
        row=base[1],
        param=torch.nn.Parameter(torch.ones(2, 3, dtype=torch.float16)),
        with_attribute=torch.zeros(5, dtype=torch.bfloat16),
        steps=torch.tensor([1, 2], dtype=torch.int64),
        scalar=torch.tensor(3.0, dtype=torch.float64),
    )
    sd["with_attribute"].note = "a Python attribute: torch pickles it with _rebuild_from_type_v2"
    sd._metadata = {"": {"version": 1}}
    checkpoint = {"model": sd, "epoch": 3, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}}
    found = dict(walk_state_dict(load(torch_data_pkl(checkpoint, protocol)), SOURCE))

    assert list(found) == [f"model.{name}" for name in sd]
    dtypes = {
        torch.float32: "F32",
        torch.float16: "F16",
        torch.bfloat16: "BF16",
        torch.int64: "I64",
        torch.float64: "F64",
    }
    for name, t in sd.items():
        got = found[f"model.{name}"]
        assert got.shape == tuple(t.shape) and got.stride == t.stride() and got.offset == t.storage_offset()
        assert (
            got.storage.dtype == dtypes[t.dtype]
            and got.storage.numel == t.untyped_storage().nbytes() // t.element_size()
        )
    assert found["model.transposed"].storage == found["model.row"].storage  # one storage, two views
    assert len({found[f"model.{n}"].storage.key for n in sd}) == len(sd) - 1


def test_the_hand_built_tensor_pickle_matches_torch_save():
    torch_made = load(torch_data_pkl({"w": torch.zeros(2, 2)}))
    hand_made = load(pk(state_dict(w=tensor())))
    assert torch_made == hand_made == {"w": F32_2X2}


def test_tensor_variants_torch_may_write():
    param = call(REBUILD_PARAMETER, tensor(), pickle.NEWFALSE, ORDERED_DICT)
    metadata = call(REBUILD_TENSOR, *tensor_args(), pickle.EMPTY_DICT)  # the optional 7th argument
    from_type = call(REBUILD_FROM_TYPE, REBUILD_TENSOR, glob("torch", "Tensor"), tup(*tensor_args()), pickle.EMPTY_DICT)
    param_from_type = call(
        REBUILD_FROM_TYPE,
        REBUILD_PARAMETER,
        glob("torch.nn.parameter", "Parameter"),
        tup(tensor(), pickle.NEWTRUE, ORDERED_DICT),
        pickle.NONE,
    )
    got = load(pk(state_dict(p=param, m=metadata, f=from_type, pf=param_from_type)))
    assert got == {"p": F32_2X2, "m": F32_2X2, "f": F32_2X2, "pf": F32_2X2}
    eight = load(pk(tensor(shape=(1,) * MAX_DIMS, stride=(1,) * MAX_DIMS)))
    assert eight.shape == (1,) * MAX_DIMS
    half = load(pk(tensor(store=storage("HalfStorage", "7", 10), offset=3, shape=(), stride=())))
    assert half == PickledTensor(StorageRef("F16", "7", 10), 3, (), ())


# -- refusals -----------------------------------------------------------------------------------

TENSOR_CALL = {
    "3 args": (call(REBUILD_TENSOR, storage(), num(0), ints(2)), "_rebuild_tensor_v2 with 3 arguments"),
    "8 args": (call(REBUILD_TENSOR, *tensor_args(), pickle.NONE, pickle.NONE), "_rebuild_tensor_v2 with 8 arguments"),
    "storage none": (tensor(store=pickle.NONE), "a tensor whose storage is None"),
    "storage str": (tensor(store=text("0")), "a tensor whose storage is '0'"),
    "size list": (
        call(REBUILD_TENSOR, storage(), num(0), pickle.EMPTY_LIST, ints(1), pickle.NEWFALSE, ORDERED_DICT),
        "a tensor's size is a list, not a tuple of at most 8 integers",
    ),
    "too many dims": (
        tensor(shape=(1,) * (MAX_DIMS + 1), stride=(1,) * (MAX_DIMS + 1)),
        "a tensor's size is a tuple, not a tuple of at most 8 integers",
    ),
    "bool size": (
        call(REBUILD_TENSOR, storage(), num(0), tup(pickle.NEWTRUE), ints(1), pickle.NEWFALSE, ORDERED_DICT),
        "a tensor's size is True, not an integer >= 0",
    ),
    "negative stride": (tensor(shape=(2,), stride=(-1,)), "a tensor's stride is -1, not an integer >= 0"),
    "negative offset": (tensor(offset=-4), "a tensor's storage offset is -4, not an integer >= 0"),
    "float offset": (
        call(
            REBUILD_TENSOR,
            storage(),
            pickle.BINFLOAT + struct.pack(">d", 1.0),
            ints(2),
            ints(1),
            pickle.NEWFALSE,
            ORDERED_DICT,
        ),
        "a tensor's storage offset is 1.0, not an integer >= 0",
    ),
    "dims and strides": (tensor(shape=(2, 2), stride=(1,)), "a tensor with 2 dimensions but 1 strides"),
    "parameter of none": (call(REBUILD_PARAMETER, pickle.NONE, pickle.NEWFALSE), "_rebuild_parameter without a tensor"),
    "parameter of nothing": (call(REBUILD_PARAMETER), "_rebuild_parameter without a tensor"),
    "from type 3 args": (
        call(REBUILD_FROM_TYPE, REBUILD_TENSOR, glob("torch", "Tensor"), tup(*tensor_args())),
        "_rebuild_from_type_v2 with unexpected arguments",
    ),
    "from type list args": (
        call(REBUILD_FROM_TYPE, REBUILD_TENSOR, glob("torch", "Tensor"), pickle.EMPTY_LIST, pickle.NONE),
        "_rebuild_from_type_v2 with unexpected arguments",
    ),
    "from type other function": (
        call(REBUILD_FROM_TYPE, glob("collections", "OrderedDict"), glob("torch", "Tensor"), tup(), pickle.NONE),
        "_rebuild_from_type_v2 with an unexpected function",
    ),
    "from type of itself": (
        call(REBUILD_FROM_TYPE, REBUILD_FROM_TYPE, glob("torch", "Tensor"), tup(), pickle.NONE),
        "_rebuild_from_type_v2 with an unexpected function",
    ),
}

PERSISTENT_ID = {
    "a string": (text("0") + pickle.BINPERSID, "unexpected persistent id '0'"),
    "4 fields": (
        persistent_id(text("storage"), glob("torch", "FloatStorage"), text("0"), text("cpu")),
        "unexpected persistent id ('storage', torch.FloatStorage, '0', 'cpu')",
    ),
    "not storage": (
        persistent_id(text("module"), glob("torch", "FloatStorage"), text("0"), text("cpu"), num(4)),
        "unexpected persistent id ('module', torch.FloatStorage, '0', 'cpu', 4)",
    ),
    "class not a storage": (
        persistent_id(text("storage"), glob("torch", "Tensor"), text("0"), text("cpu"), num(4)),
        "unexpected persistent id ('storage', torch.Tensor, '0', 'cpu', 4)",
    ),
    "class as text": (
        persistent_id(text("storage"), text("torch.FloatStorage"), text("0"), text("cpu"), num(4)),
        "unexpected persistent id ('storage', 'torch.FloatStorage', '0', 'cpu', 4)",
    ),
    "key an int": (
        persistent_id(text("storage"), glob("torch", "FloatStorage"), num(0), text("cpu"), num(4)),
        "unexpected persistent id ('storage', torch.FloatStorage, 0, 'cpu', 4)",
    ),
    "location none": (
        persistent_id(text("storage"), glob("torch", "FloatStorage"), text("0"), pickle.NONE, num(4)),
        "unexpected persistent id ('storage', torch.FloatStorage, '0', None, 4)",
    ),
    "size a list": (
        persistent_id(text("storage"), glob("torch", "FloatStorage"), text("0"), text("cpu"), pickle.EMPTY_LIST),
        "a storage's size is a list, not an integer >= 0",
    ),
    "negative size": (storage(numel=-1), "a storage's size is -1, not an integer >= 0"),
    "bool size": (
        persistent_id(text("storage"), glob("torch", "FloatStorage"), text("0"), text("cpu"), pickle.NEWTRUE),
        "a storage's size is True, not an integer >= 0",
    ),
}

STRUCTURE = {
    "protocol 1": (pickle.PROTO + b"\x01" + pickle.NONE + pickle.STOP, "an unsupported pickle protocol"),
    "protocol 6": (pickle.PROTO + b"\x06" + pickle.NONE + pickle.STOP, "an unsupported pickle protocol"),
    "empty": (b"", "it ends before its STOP opcode"),
    "no stop": (pickle.dumps({"a": 1})[:-1], "it ends before its STOP opcode"),
    "cut in a string": (pickle.PROTO + b"\x02" + text("abcdef")[:-3], "a value claims 6 bytes but 3 remain"),
    "cut in a frame": (pickle.PROTO + b"\x04" + pickle.FRAME + b"\x01\x00", "a value claims 8 bytes but 2 remain"),
    "huge bytes8": (
        pk(pickle.BINBYTES8 + struct.pack("<Q", 2**62)),
        "a value claims 4611686018427387904 bytes but 1 remain",
    ),
    "huge unicode8": (pk(pickle.BINUNICODE8 + struct.pack("<Q", 2**40) + b"ab"), "a value claims 1099511627776 bytes"),
    "negative length": (pk(pickle.LONG4 + struct.pack("<i", -1)), "a value of negative length -1"),
    "not utf-8": (pk(pickle.BINUNICODE + struct.pack("<I", 2) + b"\xff\xfe"), "a string that is not UTF-8"),
    "INST": (pk(pickle.INST + b"os\nsystem\n"), "it uses the pickle opcode INST, which a torch state dict never has"),
    "OBJ": (pk(pickle.MARK, pickle.OBJ), "it uses the pickle opcode OBJ,"),
    "NEWOBJ": (pk(pickle.NEWOBJ), "it uses the pickle opcode NEWOBJ,"),
    "EXT1": (pk(pickle.EXT1 + b"\x01"), "it uses the pickle opcode EXT1,"),
    "PERSID": (pk(pickle.PERSID + b"0\n"), "it uses the pickle opcode PERSID,"),
    "EMPTY_SET": (pk(pickle.EMPTY_SET), "it uses the pickle opcode EMPTY_SET,"),
    "BYTEARRAY8": (pk(pickle.BYTEARRAY8 + struct.pack("<Q", 0)), "it uses the pickle opcode BYTEARRAY8,"),
    "protocol 0 int": (pk(pickle.INT + b"1\n"), "it uses the pickle opcode INT,"),
    "not an opcode": (pk(b"\xff"), "it uses the pickle opcode byte 0xff, which"),
    "memo unset": (pk(pickle.BINGET + b"\x03"), "memo entry 3 is used before it is set"),
    "long memo unset": (pk(pickle.LONG_BINGET + struct.pack("<I", 70000)), "memo entry 70000 is used before it is set"),
    "setitem on list": (pk(pickle.EMPTY_LIST, text("k"), pickle.NONE, pickle.SETITEM), "it sets items on a list"),
    "setitem on the class": (
        pk(glob("collections", "OrderedDict"), text("k"), pickle.NONE, pickle.SETITEM),
        "it sets items on collections.OrderedDict",
    ),
    "setitems on tuple": (
        pk(pickle.EMPTY_TUPLE, pickle.MARK, text("k"), num(1), pickle.SETITEMS),
        "it sets items on ()",
    ),
    "tuple key": (pk(pickle.EMPTY_DICT, pickle.EMPTY_TUPLE, pickle.NONE, pickle.SETITEM), "a dict key that is a tuple"),
    "list key": (
        pk(pickle.EMPTY_DICT, pickle.MARK, pickle.EMPTY_LIST, pickle.NONE, pickle.SETITEMS),
        "a dict key that is a list",
    ),
    "tensor key": (pk(pickle.EMPTY_DICT, tensor(), pickle.NONE, pickle.SETITEM), "a dict key that is a PickledTensor"),
    "odd setitems": (
        pk(pickle.EMPTY_DICT, pickle.MARK, text("a"), num(1), text("b"), pickle.SETITEMS),
        "SETITEMS with a key and no value",
    ),
    "append to dict": (pk(pickle.EMPTY_DICT, pickle.NONE, pickle.APPEND), "it appends to a dict"),
    "appends to tuple": (pk(pickle.EMPTY_TUPLE, pickle.MARK, pickle.NONE, pickle.APPENDS), "it appends to ()"),
    "appends to str": (pk(text("s"), pickle.MARK, pickle.APPENDS), "it appends to 's'"),
    "global without newline": (pk(pickle.GLOBAL + b"torch"), "a GLOBAL without its module and name"),
    "global without name": (pk(pickle.GLOBAL + b"torch\nTensor"), "a GLOBAL without its module and name"),
    "global too long": (pk(pickle.GLOBAL + b"m" * 10_000 + b"\nname\n"), "a GLOBAL without its module and name"),
    "global not utf-8": (pk(pickle.GLOBAL + b"\xff\nx\n"), "a string that is not UTF-8"),
    "stack global of int": (pk(num(1), text("Tensor"), pickle.STACK_GLOBAL), "STACK_GLOBAL without a module and name"),
    "stack global of none": (
        pk(text("torch"), pickle.NONE, pickle.STACK_GLOBAL),
        "STACK_GLOBAL without a module and name",
    ),
    "call with list": (
        pk(glob("collections", "OrderedDict"), pickle.EMPTY_LIST, pickle.REDUCE),
        "a call whose arguments are not a tuple",
    ),
    "call a dict": (pk(pickle.EMPTY_DICT, pickle.EMPTY_TUPLE, pickle.REDUCE), "it calls a dict"),
    "call a string": (pk(text("os.system"), tup(text("ls")), pickle.REDUCE), "it calls 'os.system'"),
    "call a tensor": (pk(tensor(), pickle.EMPTY_TUPLE, pickle.REDUCE), "it calls a tensor"),
    "ordered dict with items": (
        pk(call(glob("collections", "OrderedDict"), pickle.EMPTY_LIST)),
        "it calls collections.OrderedDict with unexpected arguments",
    ),
    "call a class": (pk(call(glob("torch", "Tensor"))), "it calls torch.Tensor with unexpected arguments"),
    "call a storage": (
        pk(call(glob("torch", "HalfStorage"), num(4))),
        "it calls torch.HalfStorage with unexpected arguments",
    ),
    "build on list": (
        pk(pickle.EMPTY_LIST, pickle.NONE, pickle.BUILD),
        "it modifies a list (pickle BUILD), which a state dict never does",
    ),
    "build on tensor": (pk(tensor(), pickle.EMPTY_DICT, pickle.BUILD), "it modifies a tensor (pickle BUILD)"),
    "build on the class": (
        pk(glob("collections", "OrderedDict"), pickle.EMPTY_DICT, pickle.BUILD),
        "it modifies collections.OrderedDict (pickle BUILD)",
    ),
    "build on a storage class": (
        pk(glob("torch", "FloatStorage"), pickle.NONE, pickle.BUILD),
        "it modifies torch.FloatStorage (pickle BUILD)",
    ),
    "build with list": (pk(pickle.EMPTY_DICT, pickle.EMPTY_LIST, pickle.BUILD), "it sets a dict's state from a list"),
    "build with triple": (pk(pickle.EMPTY_DICT, ints(1, 2, 3), pickle.BUILD), "it sets a dict's state from a tuple"),
    "build with str": (pk(pickle.EMPTY_DICT, text("s"), pickle.BUILD), "it sets a dict's state from a str"),
    "pop nothing": (pk(pickle.POP), "an opcode finds too few values"),
    "stop on nothing": (pk(), "an opcode finds too few values"),
    "dup nothing": (pk(pickle.DUP), "an opcode finds too few values"),
    "memo of nothing": (pk(pickle.BINPUT + b"\x00"), "an opcode finds too few values"),
    "tuple without mark": (pk(num(1), pickle.TUPLE), "an opcode finds too few values"),
    "pop mark without mark": (pk(num(1), pickle.POP_MARK), "an opcode finds too few values"),
    "tuple2 of one": (pk(num(1), pickle.TUPLE2), "an opcode finds too few values"),
    "tuple3 of two": (pk(num(1), num(2), pickle.TUPLE3), "an opcode finds too few values"),
    "setitem without dict": (pk(text("k"), num(1), pickle.SETITEM), "an opcode finds too few values"),
    "append without list": (pk(num(1), pickle.APPEND), "an opcode finds too few values"),
    "reduce of one": (pk(pickle.EMPTY_TUPLE, pickle.REDUCE), "an opcode finds too few values"),
    "build without target": (pk(pickle.NONE, pickle.BUILD), "an opcode finds too few values"),
    "binpersid of nothing": (pk(pickle.BINPERSID), "an opcode finds too few values"),
    "stack global of one": (pk(text("torch"), pickle.STACK_GLOBAL), "an opcode finds too few values"),
}


@pytest.mark.parametrize(
    "data, fragment",
    [(pk(ops), fragment) for ops, fragment in TENSOR_CALL.values()]
    + [(pk(tensor(store=ops)), fragment) for ops, fragment in PERSISTENT_ID.values()]
    + list(STRUCTURE.values()),
    ids=[f"tensor: {k}" for k in TENSOR_CALL] + [f"persistent id: {k}" for k in PERSISTENT_ID] + list(STRUCTURE),
)
def test_malformed_pickle_is_refused_with_the_reason(data, fragment):
    assert fragment in refusal(data)


@pytest.mark.parametrize(
    "data, named",
    [
        (pk(call(glob("os", "system"), text("echo owned"))), "os.system"),
        (pk(text("builtins"), text("eval"), pickle.STACK_GLOBAL), "builtins.eval"),
        (pk(glob("torch", "load")), "torch.load"),  # a torch name, but not one a state dict uses
        (pk(glob("torch._utils", "_rebuild_tensor")), "torch._utils._rebuild_tensor"),
        (pickle.dumps(print, protocol=4), "builtins.print"),
        (pickle.dumps(os.system, protocol=2), f"{os.system.__module__}.system"),
    ],
)
def test_a_global_no_state_dict_names_is_refused_before_anything_runs(data, named):
    with pytest.raises(UnsafePickleError) as caught:
        load(data)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: refused: its pickle asks to run {named}, ")
    assert "nothing was run" in message and "safetensors" in message


def test_every_allowed_global_loads_as_its_marker():
    for (module, name), marker in ALLOWED_GLOBALS.items():
        assert load(pk(glob(module, name))) is marker
        assert load(pk(text(module), text(name), pickle.STACK_GLOBAL, protocol=4)) is marker
        assert repr(marker) == f"{module}.{name}"


def test_the_opcode_count_is_bounded(monkeypatch):
    monkeypatch.setattr(state_dict_pickle, "MAX_OPCODES", 3)
    assert load(pk(pickle.NONE)) is None  # PROTO, NONE, STOP: exactly the limit
    assert "it has more than 3 opcodes, far more than any state dict" in refusal(
        pk(pickle.NONE, pickle.POP, pickle.NONE)
    )


# -- walking the loaded state dict ---------------------------------------------------------------


def view(key: str) -> PickledTensor:
    return PickledTensor(StorageRef("F16", key, 8), 0, (8,), (1,))


def test_walk_names_nested_tensors_in_file_order_and_skips_what_is_not_a_weight():
    a, b, c, d = view("a"), view("b"), view("c"), view("d")
    root = {
        "model": collections.OrderedDict([("embed", a), ("layers", {0: {"w": b}, 1: {"w": c}})]),
        "epoch": 3,
        "optimizer": [d],  # a list: training state, not weights
        b"raw": 5,  # a non-text key whose value is not a weight is ignored too
        "lm_head.weight": d,
    }
    assert walk_state_dict(root, SOURCE) == [
        ("model.embed", a),
        ("model.layers.0.w", b),
        ("model.layers.1.w", c),
        ("lm_head.weight", d),
    ]
    assert walk_state_dict([a, b], SOURCE) == [] and walk_state_dict(None, SOURCE) == []


def test_walk_of_a_loaded_pickle():
    data = pk(
        pickle.EMPTY_DICT, text("model"), state_dict(w=tensor(), v=tensor(store=storage(key="1"))), pickle.SETITEM
    )
    found = walk_state_dict(load(data), SOURCE)
    assert [name for name, _ in found] == ["model.w", "model.v"] and [t.storage.key for _, t in found] == ["0", "1"]


def walk_refusal(root: Any) -> str:
    with pytest.raises(BadInputError) as caught:
        walk_state_dict(root, SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: ") and "\n" not in message
    return message


def test_walk_refuses_a_dict_reached_twice():
    shared = {"w": view("0")}
    assert "contains the same dict twice; the file is damaged or hostile" in walk_refusal({"a": shared, "b": shared})
    looped: dict = {"w": view("0")}
    looped["again"] = looped
    assert "contains the same dict twice" in walk_refusal(looped)


def test_walk_refuses_a_shared_dict_from_a_pickle():
    """A pickle reuses one dict by memo reference: the loader keeps it shared, the walk refuses it."""
    inner = pickle.EMPTY_DICT + pickle.BINPUT + b"\x09" + text("w") + tensor() + pickle.SETITEM
    data = pk(pickle.EMPTY_DICT, text("a"), inner, pickle.SETITEM, text("b"), pickle.BINGET + b"\x09", pickle.SETITEM)
    assert "contains the same dict twice" in walk_refusal(load(data))


def nested(levels: int) -> dict:
    """`levels` dicts, one inside the other, with a tensor in the innermost."""
    root: dict = {"w": view("0")}
    for _ in range(levels - 1):
        root = {"k": root}
    return root


def test_walk_refuses_dicts_nested_deeper_than_the_limit():
    assert walk_state_dict(nested(MAX_NESTING), SOURCE) == [(".".join(["k"] * (MAX_NESTING - 1) + ["w"]), view("0"))]
    assert f"nests dicts more than {MAX_NESTING} deep; not a checkpoint" in walk_refusal(nested(MAX_NESTING + 1))


@pytest.mark.parametrize(
    "key, type_name", [(b"w", "bytes"), (1.5, "float"), (None, "NoneType"), (True, "bool"), (("a",), "tuple")]
)
def test_walk_refuses_a_tensor_or_dict_named_by_a_key_that_is_not_text(key, type_name):
    assert f"a tensor named by a {type_name}, not text; not a checkpoint" in walk_refusal({key: view("0")})
    assert f"a tensor named by a {type_name}," in walk_refusal({"model": {key: {"w": view("0")}}})


@pytest.mark.parametrize(
    "root, name",
    [
        ({"a.b": view("0"), "a": {"b": view("1")}}, "a.b"),
        ({"0": view("0"), 0: view("1")}, "0"),
        ({"layers": {"1": view("0")}, "layers.1": view("1")}, "layers.1"),
    ],
    ids=["dotted key first", "str and int key", "dotted key last"],
)
def test_walk_refuses_two_tensors_with_one_name(root, name):
    assert f"two tensors are named {name}; the file is damaged" in walk_refusal(root)


def test_walk_refuses_a_name_no_checkpoint_has():
    assert "a tensor name that is not a weight's name ('a\\nb')" in walk_refusal({"a\nb": view("0")})


# -- how values are named in messages -----------------------------------------------------------


def test_what_names_values_without_repr_of_containers():
    assert _what("x" * 100) == repr("x" * 100)[:40]
    assert _what(None) == "None" and _what(True) == "True" and _what(-3) == "-3" and _what(b"\x00") == "b'\\x00'"
    assert _what(ALLOWED_GLOBALS[("torch", "HalfStorage")]) == "torch.HalfStorage"
    assert _what(F32_2X2) == "a tensor"
    assert _what(F32_2X2.storage) == "a StorageRef"
    assert _what((1, "a", None)) == "(1, 'a', None)"
    assert _what(tuple(range(100))) == "a tuple"  # longer than a shape
    assert _what(((),)) == "a tuple" and _what(([],)) == "a tuple"  # a container inside
    assert _what(("y" * 200,)) == repr(("y" * 200,))[:80]
    assert _what([1]) == "a list" and _what({}) == "a dict" and _what(collections.OrderedDict()) == "a OrderedDict"
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert _what(deep) == "a list"  # no recursion into it
