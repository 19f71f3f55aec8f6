"""Unpickle the `data.pkl` of a torch.save file: a state dict of tensors, and nothing else.

Why not `pickle.Unpickler` with an allow-listed `find_class`: the C unpickler still obeys the file
in ways a checkpoint can abuse. BINBYTES8 allocates the length it claims before reading it; BUILD
sets attributes on any object, the allow-listed stand-ins included, so one file could change how
every later file is read in the same process; a dict key that is a tuple nested thousands deep,
or built from shared references, is hashed recursively in C (a crash, or exponential time).

This reader is a small stack machine that knows only the opcodes torch.save writes (protocols 2
to 5) and only the globals a state dict names. It calls nothing: globals become inert markers,
and the three torch rebuild functions are interpreted here with every argument type- and
range-checked. Its work is linear in the pickle's length: no opcode allocates more than the bytes
that follow it, dict keys are plain values, and BUILD is accepted only on a dict this load made
(torch stores a state dict's `_metadata` that way), where it changes nothing.
"""

from __future__ import annotations

import collections
import pickletools
import struct
from dataclasses import dataclass
from typing import Any

from llamadesk.app.core.errors import BadInputError
from llamadesk.convert.tensor_source import check_tensor_name

MAX_DIMS = 8  # weights have at most 2; anything past a handful is not a tensor llamadesk reads
MAX_INT_BYTES = 16  # LONG1/LONG4 payloads: sizes and offsets fit in 8 bytes
MAX_GLOBAL_NAME = 256  # "module\nname\n" of GLOBAL
MAX_NESTING = 32  # dicts within dicts: {"model": {...}} is 2
# Each opcode makes at most one object (~100 bytes), so this bounds the memory a pickle can claim
# (~0.2 GB) and the time it takes (~1 s); a state dict of 10,000 tensors takes about 250,000.
MAX_OPCODES = 2_000_000
HIGHEST_PROTOCOL = 5

# The storage classes torch names in a state dict, by the dtype they hold. Only float types are
# weights; integer buffers are named so they can be recognised and skipped.
STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "F32",
    "HalfStorage": "F16",
    "BFloat16Storage": "BF16",
    "DoubleStorage": "F64",
    "LongStorage": "I64",
    "IntStorage": "I32",
    "ShortStorage": "I16",
    "CharStorage": "I8",
    "ByteStorage": "U8",
    "BoolStorage": "BOOL",
}


@dataclass(frozen=True, slots=True, repr=False)
class _Global:
    """An allow-listed global: an inert marker the loader interprets (frozen, no __dict__)."""

    name: str  # as the pickle names it, e.g. "torch.HalfStorage"
    kind: str  # "OrderedDict", "rebuild_tensor", "rebuild_parameter", "rebuild_from_type", "class", "storage"
    dtype: str = ""

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class StorageRef:
    """A tensor's storage: the zip member `data/<key>` holding `numel` values of `dtype`."""

    dtype: str
    key: str
    numel: int


@dataclass(frozen=True, slots=True)
class PickledTensor:
    """A tensor as torch pickles it: a view (offset, shape, stride in elements) of a storage."""

    storage: StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


# Everything a state-dict pickle may name.
ALLOWED_GLOBALS: dict[tuple[str, str], _Global] = {
    ("collections", "OrderedDict"): _Global("collections.OrderedDict", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"): _Global("torch._utils._rebuild_tensor_v2", "rebuild_tensor"),
    ("torch._utils", "_rebuild_parameter"): _Global("torch._utils._rebuild_parameter", "rebuild_parameter"),
    ("torch._tensor", "_rebuild_from_type_v2"): _Global("torch._tensor._rebuild_from_type_v2", "rebuild_from_type"),
    ("torch", "Tensor"): _Global("torch.Tensor", "class"),
    ("torch.nn.parameter", "Parameter"): _Global("torch.nn.parameter.Parameter", "class"),
    **{("torch", name): _Global(f"torch.{name}", "storage", dtype) for name, dtype in STORAGE_DTYPES.items()},
}

_STOP = object()  # what the STOP opcode's handler returns

# Values a dict key may be: hashing them is cheap and cannot recurse.
_PLAIN_KEYS = (str, int, float, bool, bytes, type(None))


class UnsafePickleError(BadInputError):
    """The checkpoint's pickle names a global a tensor checkpoint never needs."""


class _Malformed(Exception):
    """Internal: the pickle is not a state dict; the message says why."""


def _what(value: Any) -> str:
    """What a value is, for a message: a plain value as written (cut short), a global by name, else its type.

    Containers are never repr()'d: one nested 100,000 deep would exhaust the recursion limit.
    """
    if type(value) in _PLAIN_KEYS:
        return f"{value!r:.40}"
    if type(value) is _Global:
        return value.name
    if type(value) is PickledTensor:
        return "a tensor"
    if type(value) is tuple and len(value) <= MAX_DIMS and all(type(v) in (*_PLAIN_KEYS, _Global) for v in value):
        return f"{value!r:.80}"
    return f"a {type(value).__name__}"


def _exact_int(value: Any, what: str, minimum: int = 0) -> int:
    if type(value) is not int or value < minimum:  # bool is an int subclass: refused too
        raise _Malformed(f"{what} is {_what(value)}, not an integer >= {minimum}")
    return value


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if type(value) is not tuple or len(value) > MAX_DIMS:
        raise _Malformed(f"{what} is {_what(value)}, not a tuple of at most {MAX_DIMS} integers")
    return tuple(_exact_int(v, what) for v in value)


def _rebuild_tensor(args: tuple) -> PickledTensor:
    # torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata])
    if not 4 <= len(args) <= 7:
        raise _Malformed(f"_rebuild_tensor_v2 with {len(args)} arguments")
    storage, offset, size, stride = args[:4]
    if type(storage) is not StorageRef:
        raise _Malformed(f"a tensor whose storage is {_what(storage)}")
    shape, strides = _int_tuple(size, "a tensor's size"), _int_tuple(stride, "a tensor's stride")
    if len(shape) != len(strides):
        raise _Malformed(f"a tensor with {len(shape)} dimensions but {len(strides)} strides")
    return PickledTensor(storage, _exact_int(offset, "a tensor's storage offset"), shape, strides)


def _rebuild_parameter(args: tuple) -> PickledTensor:
    # torch._utils._rebuild_parameter(data, requires_grad, backward_hooks)
    if not args or type(args[0]) is not PickledTensor:
        raise _Malformed("_rebuild_parameter without a tensor")
    return args[0]


def _rebuild_from_type(args: tuple) -> PickledTensor:
    # torch._tensor._rebuild_from_type_v2(func, new_type, args, state): the state (Python
    # attributes of a Tensor subclass) is not a weight and is ignored.
    if len(args) != 4 or type(args[2]) is not tuple:
        raise _Malformed("_rebuild_from_type_v2 with unexpected arguments")
    func = args[0]
    if func is ALLOWED_GLOBALS[("torch._utils", "_rebuild_tensor_v2")]:
        return _rebuild_tensor(args[2])
    if func is ALLOWED_GLOBALS[("torch._utils", "_rebuild_parameter")]:
        return _rebuild_parameter(args[2])
    raise _Malformed("_rebuild_from_type_v2 with an unexpected function")


def _storage(pid: Any) -> StorageRef:
    # ("storage", storage class, key, location, numel), as torch.save's persistent_id writes it
    if not (type(pid) is tuple and len(pid) == 5 and pid[0] == "storage"):
        raise _Malformed(f"unexpected persistent id {_what(pid)}")
    kind, key, location = pid[1], pid[2], pid[3]
    if not (type(kind) is _Global and kind.kind == "storage" and type(key) is str and type(location) is str):
        raise _Malformed(f"unexpected persistent id {_what(pid)}")
    return StorageRef(kind.dtype, key, _exact_int(pid[4], "a storage's size"))


class StateDictLoader:
    """Reads one pickle; `load()` returns its object (dicts, lists, tuples, plain values, tensors)."""

    def __init__(self, data: bytes, source: str):
        self.data = data
        self.source = source
        self.pos = 0
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        # Dicts made by this load, by id: the only objects BUILD may touch (held, so ids stay unique).
        self.made: dict[int, dict] = {}
        self.handlers = {
            op: getattr(self, f"_op_{pickletools.code2op[chr(op)].name.lower()}")
            for op in range(256)
            if chr(op) in pickletools.code2op and hasattr(self, f"_op_{pickletools.code2op[chr(op)].name.lower()}")
        }

    def load(self) -> Any:
        try:
            for _ in range(MAX_OPCODES):
                if self.pos >= len(self.data):
                    raise _Malformed("it ends before its STOP opcode")
                op = self.data[self.pos]
                self.pos += 1
                handler = self.handlers.get(op)
                if handler is None:
                    name = pickletools.code2op[chr(op)].name if chr(op) in pickletools.code2op else f"byte {op:#04x}"
                    raise _Malformed(f"it uses the pickle opcode {name}, which a torch state dict never has")
                if handler() is _STOP:
                    return self.stack.pop()
            raise _Malformed(f"it has more than {MAX_OPCODES:,} opcodes, far more than any state dict")
        except _Malformed as why:
            raise BadInputError(f"{self.source}: its pickle is not a state dict of tensors ({why})") from None
        except IndexError:  # popping an empty stack or metastack
            raise BadInputError(
                f"{self.source}: its pickle is not a state dict of tensors (an opcode finds too few values)"
            ) from None

    # -- reading the opcode arguments
    def _take(self, n: int) -> bytes:
        if n < 0:
            raise _Malformed(f"a value of negative length {n}")
        if n > len(self.data) - self.pos:
            raise _Malformed(f"a value claims {n} bytes but {len(self.data) - self.pos} remain")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def _unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self._take(struct.calcsize(fmt)))[0]

    def _pop_mark(self) -> list[Any]:
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def _text(self, n: int) -> str:
        try:
            return self._take(n).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise _Malformed("a string that is not UTF-8") from None

    def _long(self, n: int) -> int:
        if n > MAX_INT_BYTES:
            raise _Malformed(f"an integer of {n} bytes")
        return int.from_bytes(self._take(n), "little", signed=True)

    def _dict(self, target: Any) -> dict:
        if type(target) not in (dict, collections.OrderedDict):
            raise _Malformed(f"it sets items on {_what(target)}")
        return target

    def _key(self, key: Any) -> Any:
        if type(key) not in _PLAIN_KEYS:
            raise _Malformed(f"a dict key that is a {type(key).__name__}")
        return key

    def _made(self, obj: dict) -> dict:
        self.made[id(obj)] = obj
        return obj

    # -- framing, marks, memo
    def _op_proto(self) -> None:
        if not 2 <= self._unpack("<B") <= HIGHEST_PROTOCOL:
            raise _Malformed("an unsupported pickle protocol")

    def _op_frame(self) -> None:
        self._take(8)  # a frame's length: the frame's opcodes follow inline

    def _op_stop(self) -> object:
        return _STOP

    def _op_mark(self) -> None:
        self.metastack.append(self.stack)
        self.stack = []

    def _op_pop(self) -> None:
        self.stack.pop()

    def _op_pop_mark(self) -> None:
        self._pop_mark()

    def _op_dup(self) -> None:
        self.stack.append(self.stack[-1])

    def _put(self, index: int) -> None:
        self.memo[index] = self.stack[-1]

    def _get(self, index: int) -> None:
        if index not in self.memo:
            raise _Malformed(f"memo entry {index} is used before it is set")
        self.stack.append(self.memo[index])

    def _op_binput(self) -> None:
        self._put(self._unpack("<B"))

    def _op_long_binput(self) -> None:
        self._put(self._unpack("<I"))

    def _op_memoize(self) -> None:
        self._put(len(self.memo))

    def _op_binget(self) -> None:
        self._get(self._unpack("<B"))

    def _op_long_binget(self) -> None:
        self._get(self._unpack("<I"))

    # -- plain values
    def _op_none(self) -> None:
        self.stack.append(None)

    def _op_newtrue(self) -> None:
        self.stack.append(True)

    def _op_newfalse(self) -> None:
        self.stack.append(False)

    def _op_binint(self) -> None:
        self.stack.append(self._unpack("<i"))

    def _op_binint1(self) -> None:
        self.stack.append(self._unpack("<B"))

    def _op_binint2(self) -> None:
        self.stack.append(self._unpack("<H"))

    def _op_long1(self) -> None:
        self.stack.append(self._long(self._unpack("<B")))

    def _op_long4(self) -> None:
        self.stack.append(self._long(self._unpack("<i")))

    def _op_binfloat(self) -> None:
        self.stack.append(self._unpack(">d"))

    def _op_short_binunicode(self) -> None:
        self.stack.append(self._text(self._unpack("<B")))

    def _op_binunicode(self) -> None:
        self.stack.append(self._text(self._unpack("<I")))

    def _op_binunicode8(self) -> None:
        self.stack.append(self._text(self._unpack("<Q")))

    def _op_short_binbytes(self) -> None:
        self.stack.append(self._take(self._unpack("<B")))

    def _op_binbytes(self) -> None:
        self.stack.append(self._take(self._unpack("<I")))

    def _op_binbytes8(self) -> None:
        self.stack.append(self._take(self._unpack("<Q")))

    # -- containers
    def _op_empty_dict(self) -> None:
        self.stack.append(self._made({}))

    def _op_empty_list(self) -> None:
        self.stack.append([])

    def _op_empty_tuple(self) -> None:
        self.stack.append(())

    def _op_tuple(self) -> None:
        items = self._pop_mark()  # before naming self.stack: popping the mark replaces it
        self.stack.append(tuple(items))

    def _op_tuple1(self) -> None:
        self._tuple_of(1)

    def _op_tuple2(self) -> None:
        self._tuple_of(2)

    def _op_tuple3(self) -> None:
        self._tuple_of(3)

    def _tuple_of(self, n: int) -> None:
        if len(self.stack) < n:
            raise IndexError
        self.stack[-n:] = [tuple(self.stack[-n:])]

    def _op_setitem(self) -> None:
        value, key = self.stack.pop(), self.stack.pop()
        self._dict(self.stack[-1])[self._key(key)] = value

    def _op_setitems(self) -> None:
        items = self._pop_mark()
        if len(items) % 2:
            raise _Malformed("SETITEMS with a key and no value")
        target = self._dict(self.stack[-1])
        for i in range(0, len(items), 2):
            target[self._key(items[i])] = items[i + 1]

    def _op_append(self) -> None:
        value = self.stack.pop()
        self._list(self.stack[-1]).append(value)

    def _op_appends(self) -> None:
        items = self._pop_mark()
        self._list(self.stack[-1]).extend(items)

    def _list(self, target: Any) -> list:
        if type(target) is not list:
            raise _Malformed(f"it appends to {_what(target)}")
        return target

    # -- globals, calls, storages
    def _global(self, module: str, name: str) -> None:
        found = ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise UnsafePickleError(
                f"{self.source}: refused: its pickle asks to run {module}.{name}, which a checkpoint of "
                "weights never needs (it may be malicious); nothing was run. Get the model as "
                "safetensors instead"
            )
        self.stack.append(found)

    def _line(self) -> str:
        end = self.data.find(b"\n", self.pos, self.pos + MAX_GLOBAL_NAME)
        if end < 0:
            raise _Malformed("a GLOBAL without its module and name")
        text = self._text(end - self.pos)
        self.pos += 1
        return text

    def _op_global(self) -> None:
        module = self._line()
        self._global(module, self._line())

    def _op_stack_global(self) -> None:
        name, module = self.stack.pop(), self.stack.pop()
        if type(module) is not str or type(name) is not str:
            raise _Malformed("STACK_GLOBAL without a module and name")
        self._global(module, name)

    def _op_binpersid(self) -> None:
        self.stack.append(_storage(self.stack.pop()))

    def _op_reduce(self) -> None:
        args, func = self.stack.pop(), self.stack.pop()
        if type(args) is not tuple:
            raise _Malformed("a call whose arguments are not a tuple")
        if type(func) is not _Global:
            raise _Malformed(f"it calls {_what(func)}")
        if func.kind == "OrderedDict" and not args:
            self.stack.append(self._made(collections.OrderedDict()))
        elif func.kind == "rebuild_tensor":
            self.stack.append(_rebuild_tensor(args))
        elif func.kind == "rebuild_parameter":
            self.stack.append(_rebuild_parameter(args))
        elif func.kind == "rebuild_from_type":
            self.stack.append(_rebuild_from_type(args))
        else:
            raise _Malformed(f"it calls {func.name} with unexpected arguments")

    def _op_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        # torch sets a state dict's `_metadata` (module versions) this way; it is not a weight, so
        # it is checked and dropped. Anything else (a stand-in, a tensor, a list) is refused.
        if id(target) not in self.made or self.made[id(target)] is not target:
            raise _Malformed(f"it modifies {_what(target)} (pickle BUILD), which a state dict never does")
        if not (state is None or type(state) is dict or (type(state) is tuple and len(state) == 2)):
            raise _Malformed(f"it sets a dict's state from a {type(state).__name__}")


def walk_state_dict(root: Any, source: str) -> list[tuple[str, PickledTensor]]:
    """The tensors in a (possibly nested, e.g. {"model": {...}}) dict, with dotted names.

    Iterative, and each dict is entered once: a dict that contains itself, or one shared by two
    keys (a pickle can make a few hundred bytes describe billions of paths that way), is refused.
    """
    found: list[tuple[str, PickledTensor]] = []
    names: set[str] = set()
    entered: set[int] = set()
    pending: list[tuple[Any, str, int]] = [(root, "", 0)]
    while pending:
        obj, prefix, depth = pending.pop()
        if type(obj) is PickledTensor:
            check_tensor_name(prefix, source)
            if prefix in names:
                raise BadInputError(f"{source}: two tensors are named {prefix}; the file is damaged")
            names.add(prefix)
            found.append((prefix, obj))
            continue
        if type(obj) not in (dict, collections.OrderedDict):
            continue  # numbers, strings, lists of training state: not weights
        if id(obj) in entered:
            raise BadInputError(
                f"{source}: its state dict contains the same dict twice; the file is damaged or hostile"
            )
        if depth >= MAX_NESTING:
            raise BadInputError(f"{source}: its state dict nests dicts more than {MAX_NESTING} deep; not a checkpoint")
        entered.add(id(obj))
        for key, value in reversed(obj.items()):
            if type(value) not in (PickledTensor, dict, collections.OrderedDict):
                continue
            if type(key) not in (str, int):
                raise BadInputError(f"{source}: a tensor named by a {type(key).__name__}, not text; not a checkpoint")
            pending.append((value, f"{prefix}.{key}" if prefix else str(key), depth + 1))
    return found
