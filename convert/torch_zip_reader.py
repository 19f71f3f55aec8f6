"""Read PyTorch checkpoints (`pytorch_model*.bin`, `consolidated.NN.pth`) without torch, safely.

A torch.save file is a zip: `data.pkl` describes the state dict, `data/<key>` hold the raw tensor
bytes. Unpickling normally lets the file name any Python global, which is how a checkpoint can
run code (`os.system`, ...). Here the unpickler knows only the handful of globals torch itself
writes for a state dict, and builds llamadesk's own lazy tensors from them; any other global is
refused before anything is called. Tensor bytes are memory-mapped straight out of the zip (torch
stores them uncompressed and aligned).
"""

from __future__ import annotations

import collections
import mmap
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llamadesk.app.core.errors import BadInputError
from llamadesk.convert.safetensors_reader import release_pages
from llamadesk.convert.tensor_source import NUMPY_DTYPES, TensorSource

# The storage classes torch names in a state dict, by the dtype they hold. Only float types are
# weights; integer buffers are named so the refusal can say what they are.
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


@dataclass(frozen=True)
class _StorageType:
    dtype: str


@dataclass(frozen=True)
class _Storage:
    dtype: str
    key: str
    numel: int


@dataclass(frozen=True)
class _PickledTensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage: _Storage, offset: int, size: tuple, stride: tuple, *_: Any) -> _PickledTensor:
    return _PickledTensor(storage, int(offset), tuple(int(d) for d in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data: _PickledTensor, *_: Any) -> _PickledTensor:
    return data


def _rebuild_from_type_v2(func: Callable, _new_type: Any, args: tuple, _state: Any) -> Any:
    if func not in (_rebuild_tensor_v2, _rebuild_parameter):
        raise pickle.UnpicklingError("_rebuild_from_type_v2 with an unexpected function")
    return func(*args)


class _TensorClass:
    """Stands for torch.Tensor / nn.Parameter when a pickle names the class (never called)."""


# Everything a state-dict pickle may name. Each entry is llamadesk's own harmless stand-in.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Tensor"): _TensorClass,
    ("torch.nn.parameter", "Parameter"): _TensorClass,
    **{("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
}


class UnsafePickleError(BadInputError):
    """The checkpoint's pickle names a global a tensor checkpoint never needs."""


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.path}: refused: its pickle asks to run {module}.{name}, which a checkpoint of "
                "weights never needs (it may be malicious); nothing was run. Get the model as "
                "safetensors instead"
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        return _Storage(pid[1].dtype, str(pid[2]), int(pid[4]))


def _data_offset(mapped: mmap.mmap, info: zipfile.ZipInfo) -> int:
    """Where an entry's bytes start: after its local header, whose extra field pads to alignment."""
    header = mapped[info.header_offset : info.header_offset + 30]
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {info.filename}")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))


def _walk_state_dict(obj: Any, prefix: str = "") -> list[tuple[str, _PickledTensor]]:
    """Tensors in a (possibly nested, e.g. {"model": {...}}) dict, with dotted names."""
    if isinstance(obj, _PickledTensor):
        return [(prefix, obj)]
    if isinstance(obj, dict):
        found = []
        for key, value in obj.items():
            found += _walk_state_dict(value, f"{prefix}.{key}" if prefix else str(key))
        return found
    return []  # numbers, strings, training state: not weights


def read_torch_zip(path: Path) -> list[TensorSource]:
    """The float tensors of a torch.save zip; refuses any pickle that names a non-tensor global."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        with open(path, "rb") as f:
            magic = f.read(2)
        if magic == b"\x80\x02" or magic[:1] == b"\x80":
            raise BadInputError(
                f"{path}: an old-style (pre-1.6) PyTorch file; re-save it with a recent torch or as safetensors"
            ) from None
        raise BadInputError(
            f"{path}: not a complete PyTorch zip file; the file is damaged or incomplete (download it again)"
        ) from None
    with archive:
        infos = {info.filename: info for info in archive.infolist()}
        pickles = [name for name in infos if name.endswith("/data.pkl") or name == "data.pkl"]
        if len(pickles) != 1:
            raise BadInputError(f"{path}: a zip file but not a PyTorch checkpoint (no data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        if (byteorder := infos.get(prefix + "byteorder")) and archive.read(byteorder) != b"little":
            raise BadInputError(f"{path}: a big-endian checkpoint; llamadesk reads little-endian ones")
        try:
            with archive.open(pickles[0]) as f:
                state = _StateDictUnpickler(f, path).load()
        except BadInputError:
            raise
        except (
            pickle.UnpicklingError,
            EOFError,
            ValueError,
            TypeError,
            AttributeError,
            IndexError,
            KeyError,
            zipfile.BadZipFile,
        ) as err:
            raise BadInputError(f"{path}: its pickle is not a state dict of tensors ({err})") from None
    size = path.stat().st_size
    mapped: list[mmap.mmap] = []

    def zip_map() -> mmap.mmap:
        if not mapped:
            with open(path, "rb") as f:
                mapped.append(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
        return mapped[0]

    def locate(storage: _Storage) -> tuple[zipfile.ZipInfo, int]:
        info = infos.get(f"{prefix}data/{storage.key}")
        if info is None:
            raise BadInputError(f"{path}: storage {storage.key} is missing; the file is damaged or incomplete")
        if info.compress_type != zipfile.ZIP_STORED:
            raise BadInputError(f"{path}: tensor data is compressed, which torch never writes; re-save the checkpoint")
        start = _data_offset(zip_map(), info)
        if start + info.file_size > size or info.file_size < storage.numel * NUMPY_DTYPES[storage.dtype].itemsize:
            raise BadInputError(
                f"{path}: storage {storage.key} is cut short; the file is damaged or incomplete (download it again)"
            )
        return info, start

    def reader(tensor: _PickledTensor) -> Callable[[], np.ndarray]:
        def read() -> np.ndarray:
            _, start = locate(tensor.storage)
            dtype = NUMPY_DTYPES[tensor.storage.dtype]
            flat = np.frombuffer(zip_map(), dtype=dtype, count=tensor.storage.numel, offset=start)
            if tensor.stride == _contiguous_strides(tensor.shape):
                count = int(np.prod(tensor.shape, dtype=np.int64))
                return flat[tensor.offset : tensor.offset + count].reshape(tensor.shape)
            view = np.lib.stride_tricks.as_strided(
                flat[tensor.offset :], tensor.shape, [s * dtype.itemsize for s in tensor.stride], writeable=False
            )
            return np.ascontiguousarray(view)

        return read

    def releaser(tensor: _PickledTensor) -> Callable[[float], None]:
        def release(fraction: float = 1.0) -> None:
            if mapped:
                info, start = locate(tensor.storage)
                release_pages(mapped[0], start, int(info.file_size * fraction))

        return release

    tensors = []
    for name, tensor in _walk_state_dict(state):
        if tensor.storage.dtype not in NUMPY_DTYPES:
            continue  # integer/bool buffers (position ids, masks) are never LLaMA weights
        locate(tensor.storage)  # a truncated file is reported now, not halfway through writing
        tensors.append(TensorSource(name, tensor.shape, tensor.storage.dtype, reader(tensor), releaser(tensor)))
    return tensors
