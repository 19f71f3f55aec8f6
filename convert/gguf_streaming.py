"""Writing a GGUF one tensor at a time, atomically: the part a model and a LoRA adapter share.

What differs between them is the metadata (the caller fills the writer) and where each tensor's
bytes come from; what is the same is the order gguf-py needs (header, key-values, tensor infos,
then the data), releasing each tensor as soon as it is written so peak memory stays about one
tensor, progress in bytes, and the atomic rename after an optional check of the finished file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol

import gguf
import numpy as np

from llamadesk.app.core.atomic_file import atomic_output

Progress = Callable[[int, int], None]


class StreamedTensor(Protocol):
    name: str
    nbytes: int
    qtype: gguf.GGMLQuantizationType

    @property
    def stored(self) -> tuple[Sequence[int], np.dtype]: ...

    def produce(self) -> np.ndarray | Iterable[np.ndarray]: ...  # the whole tensor, or its row blocks in order

    def release(self) -> None: ...


def padded_bytes(tensors: Sequence[StreamedTensor]) -> int:
    """The tensor data's size in the file: each tensor padded to GGUF's alignment."""
    return sum(gguf.GGUFWriter.ggml_pad(t.nbytes, gguf.GGUF_DEFAULT_ALIGNMENT) for t in tensors)


def blocks_of(data: np.ndarray | Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    """A tensor producer's output as blocks of rows, whether it gave the whole array or blocks."""
    return [data] if isinstance(data, np.ndarray) else data


def _write_tensor_data(writer: gguf.GGUFWriter, tensor: StreamedTensor) -> None:
    """A tensor's bytes at the next aligned offset, a block at a time, then the padding after it.

    GGUF's data section is each tensor at an offset aligned to the file's alignment (the tensor
    infos written before say where), so this is what gguf-py's write_tensor_data does for a whole
    array, without needing the whole array in memory.
    """
    assert writer.fout is not None and len(writer.fout) == 1  # one file: no split output
    out = writer.fout[0]
    writer.write_padding(out, out.tell())
    written = 0
    for block in blocks_of(tensor.produce()):
        block = np.ascontiguousarray(block)
        block.tofile(out)
        written += block.nbytes
        del block
    if written != tensor.nbytes:
        raise RuntimeError(f"{tensor.name}: {written} bytes produced, {tensor.nbytes} planned")
    writer.write_padding(out, written)


def stream_gguf(
    writer: gguf.GGUFWriter,
    tensors: Sequence[StreamedTensor],
    output: Path,
    force: bool,
    progress: Progress | None = None,
    check: Callable[[Path], None] | None = None,
) -> Path:
    """Write `writer`'s metadata and `tensors` to `output` (under a temporary name until complete).

    `check(path)` runs on the complete file before it gets its final name; if it raises, the file
    is removed, so a GGUF that fails verification never appears under `output`.
    """
    for tensor in tensors:
        shape, dtype = tensor.stored
        writer.add_tensor_info(tensor.name, shape, dtype, tensor.nbytes, raw_dtype=tensor.qtype)
    total, done = padded_bytes(tensors), 0
    with atomic_output(output, force) as tmp:
        try:
            writer.write_header_to_file(tmp)
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            for tensor in tensors:
                _write_tensor_data(writer, tensor)
                tensor.release()
                done += gguf.GGUFWriter.ggml_pad(tensor.nbytes, gguf.GGUF_DEFAULT_ALIGNMENT)
                if progress:
                    progress(done, total)
        finally:
            writer.close()
        if check:
            check(tmp)
    return output
