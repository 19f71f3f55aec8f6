"""Read PyTorch checkpoints (`pytorch_model*.bin`, `consolidated.NN.pth`) without torch, safely.

A torch.save file is a zip: `data.pkl` describes the state dict, `data/<key>` hold the raw tensor
bytes. Unpickling normally lets the file name any Python global, which is how a checkpoint can
run code (`os.system`, ...); here `state_dict_pickle` reads the pickle with a reader that knows
only what a state dict holds. Everything the pickle claims is then checked against the zip before
any byte is read: each member's size (the zip's directory and data.pkl are read with a cap, so a
zip bomb stays on disk), and each tensor's shape, stride and offset against its storage, so a
view can never reach outside the bytes it names. Tensor bytes are memory-mapped straight out of
the zip (torch stores them uncompressed and aligned).
"""

from __future__ import annotations

import lzma
import math
import mmap
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import BadInputError
from llamadesk.convert.safetensors_reader import release_pages
from llamadesk.convert.state_dict_pickle import (
    PickledTensor,
    StateDictLoader,
    StorageRef,
    UnsafePickleError,
    walk_state_dict,
)
from llamadesk.convert.tensor_source import NUMPY_DTYPES, TensorSource

__all__ = ["UnsafePickleError", "read_torch_zip"]

# data.pkl of a 7B checkpoint is ~60 KB; of one with 10,000 tensors ~2 MB.
MAX_PICKLE_BYTES = 64 * 1024**2
# zipfile turns every central-directory entry into a Python object; torch writes ~100 bytes of
# directory per tensor.
MAX_CENTRAL_DIRECTORY = 16 * 1024**2
# A pickle deflates to a third or so; a member that inflates a hundredfold is a zip bomb.
MAX_COMPRESSION_RATIO = 100
# What reading a damaged or hostile member can raise, from zipfile and its decompressors.
_UNREADABLE_MEMBER = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, NotImplementedError, RuntimeError)
_UNREADABLE_ZIP = (zipfile.BadZipFile, EOFError, ValueError, struct.error, NotImplementedError, OSError)


def _damaged(path: Path, why: str) -> BadInputError:
    return BadInputError(f"{path}: {why}; the file is damaged or incomplete (download it again)")


def _central_directory_size(f: BinaryIO, size: int) -> int | None:
    """The size the zip's end record gives its central directory (zip64 too), or None if not found."""
    tail_len = min(size, 22 + 0xFFFF)  # the end record is 22 bytes plus a comment of up to 64 KiB
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return None
    entries, directory_size = struct.unpack_from("<HI", tail, at + 10)
    if entries != 0xFFFF and directory_size != 0xFFFFFFFF:
        return directory_size
    locator = tail[at - 20 : at] if at >= 20 else b""
    if len(locator) != 20 or locator[:4] != b"PK\x06\x07":
        return directory_size
    (record_at,) = struct.unpack_from("<Q", locator, 8)
    f.seek(min(record_at, size))
    record = f.read(56)
    if len(record) != 56 or record[:4] != b"PK\x06\x06":
        return None
    return struct.unpack_from("<Q", record, 40)[0]


def _open_zip(path: Path, f: BinaryIO, size: int) -> zipfile.ZipFile:
    directory = _central_directory_size(f, size)
    if directory is not None and directory > MAX_CENTRAL_DIRECTORY:
        raise BadInputError(
            f"{path}: its zip directory claims {format_bytes(directory)}, more than any checkpoint has; "
            "the file is damaged or hostile"
        )
    f.seek(0)
    try:
        return zipfile.ZipFile(f)
    except _UNREADABLE_ZIP:
        f.seek(0)
        magic = f.read(2)
        if magic[:1] == b"\x80":
            raise BadInputError(
                f"{path}: an old-style (pre-1.6) PyTorch file; re-save it with a recent torch or as safetensors"
            ) from None
        raise BadInputError(
            f"{path}: not a complete PyTorch zip file; the file is damaged or incomplete (download it again)"
        ) from None


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, path: Path) -> bytes:
    """A small member's bytes, refusing before inflating anything that claims or turns out bigger than `limit`."""
    if info.file_size > limit:
        raise BadInputError(
            f"{path}: {info.filename} claims {format_bytes(info.file_size)}, more than a checkpoint's "
            f"{format_bytes(limit)}; the file is damaged or hostile"
        )
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
        raise BadInputError(
            f"{path}: {info.filename} inflates more than {MAX_COMPRESSION_RATIO} times (a zip bomb); refused"
        )
    try:
        with archive.open(info) as member:
            data = member.read(limit + 1)  # zipfile also stops at the declared size
    except _UNREADABLE_MEMBER as err:
        raise _damaged(path, f"{info.filename} cannot be read ({err})") from None
    if len(data) > limit:
        raise BadInputError(f"{path}: {info.filename} is larger than {format_bytes(limit)}; refused")
    return data


def _data_offset(mapped: mmap.mmap, info: zipfile.ZipInfo, path: Path) -> int:
    """Where an entry's bytes start: after its local header, whose extra field pads to alignment."""
    header = mapped[info.header_offset : info.header_offset + 30]
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise _damaged(path, f"{info.filename} has no local header")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))


def _check_view(tensor: PickledTensor, name: str, path: Path) -> None:
    """Refuse a tensor that claims more elements than its storage, or whose view reaches past it.

    The first bounds the work a file can ask for by its size: no weight is a broadcast (stride 0)
    view, and one of a single value could otherwise claim terabytes.

    A view reads element offset + sum(i_k * stride_k) for every index i_k < shape_k, so the highest
    is offset + sum((shape_k - 1) * stride_k); strides and offsets are non-negative (checked when
    the pickle was read), so nothing below the storage's start is ever read either.
    """
    count = math.prod(tensor.shape)
    numel = tensor.storage.numel
    if count > numel:
        raise BadInputError(
            f"{path}: tensor {name} claims {count:,} elements but its storage holds {numel:,} (a broadcast view, "
            "or a damaged file); llamadesk converts weights stored in full"
        )
    if count and tensor.offset + sum((d - 1) * s for d, s in zip(tensor.shape, tensor.stride, strict=True)) >= numel:
        raise BadInputError(
            f"{path}: tensor {name} reaches past the end of its storage (offset {tensor.offset:,}, "
            f"shape {list(tensor.shape)}, stride {list(tensor.stride)}, storage of {numel:,}); "
            "the file is damaged or hostile"
        )


def read_torch_zip(path: Path) -> list[TensorSource]:
    """The float tensors of a torch.save zip; refuses any pickle that names a non-tensor global."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        archive = _open_zip(path, f, size)
        with archive:
            members = archive.infolist()
            infos = {info.filename: info for info in members}
            if len(infos) != len(members):
                raise _damaged(path, "its zip lists the same member twice")
            pickles = [name for name in infos if name.endswith("/data.pkl") or name == "data.pkl"]
            if len(pickles) != 1:
                raise BadInputError(f"{path}: a zip file but not a PyTorch checkpoint (no data.pkl)")
            prefix = pickles[0][: -len("data.pkl")]
            byteorder = infos.get(prefix + "byteorder")
            if byteorder and _read_member(archive, byteorder, 16, path) != b"little":
                raise BadInputError(f"{path}: a big-endian checkpoint; llamadesk reads little-endian ones")
            pickled = _read_member(archive, infos[pickles[0]], MAX_PICKLE_BYTES, path)
    found = walk_state_dict(StateDictLoader(pickled, str(path)).load(), str(path))
    mapped: list[mmap.mmap] = []

    def zip_map() -> mmap.mmap:
        if not mapped:
            with open(path, "rb") as f:
                mapped.append(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
        return mapped[0]

    def locate(storage: StorageRef) -> tuple[int, int]:
        """Where a storage's bytes are in the file, and how many there are, checked against its size."""
        info = infos.get(f"{prefix}data/{storage.key}")
        if info is None:
            raise _damaged(path, f"storage {storage.key} is missing")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise BadInputError(f"{path}: tensor data is compressed, which torch never writes; re-save the checkpoint")
        start = _data_offset(zip_map(), info, path)
        if start + info.file_size > size or info.file_size < storage.numel * NUMPY_DTYPES[storage.dtype].itemsize:
            raise _damaged(path, f"storage {storage.key} is cut short")
        return start, info.file_size

    def reader(tensor: PickledTensor) -> Callable[[], np.ndarray]:
        def read() -> np.ndarray:
            start, _ = locate(tensor.storage)
            dtype = NUMPY_DTYPES[tensor.storage.dtype]
            flat = np.frombuffer(zip_map(), dtype=dtype, count=tensor.storage.numel, offset=start)
            if tensor.stride == _contiguous_strides(tensor.shape):
                count = math.prod(tensor.shape)
                return flat[tensor.offset : tensor.offset + count].reshape(tensor.shape)
            # Safe only because _check_view proved every element it reaches lies inside `flat`.
            view = np.lib.stride_tricks.as_strided(
                flat[tensor.offset :], tensor.shape, [s * dtype.itemsize for s in tensor.stride], writeable=False
            )
            return np.ascontiguousarray(view)

        return read

    def releaser(tensor: PickledTensor) -> Callable[[float], None]:
        def release(fraction: float = 1.0) -> None:
            if mapped:
                start, length = locate(tensor.storage)
                release_pages(mapped[0], start, int(length * fraction))

        return release

    tensors = []
    for name, tensor in found:
        if tensor.storage.dtype == "F64":  # a float tensor, so maybe a weight: skipped, it was "missing"
            raise BadInputError(f"{path}: tensor {name} is F64; llamadesk converts F32, F16 and BF16 checkpoints")
        if tensor.storage.dtype not in NUMPY_DTYPES:
            continue  # integer/bool buffers (position ids, masks) are never LLaMA weights
        locate(tensor.storage)  # a truncated file is reported now, not halfway through writing
        _check_view(tensor, name, path)
        tensors.append(TensorSource(name, tensor.shape, tensor.storage.dtype, reader(tensor), releaser(tensor)))
    return tensors
