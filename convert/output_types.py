"""Output tensor types (--outtype) and turning a checkpoint tensor into bytes of that type."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import gguf
import numpy as np

from llamadesk.app.core.errors import BadInputError
from llamadesk.convert.tensor_source import bf16_bits_to_float16, float32_to_bf16_bits, to_float32

Q = gguf.GGMLQuantizationType
OUTTYPES: dict[str, Q] = {"f32": Q.F32, "f16": Q.F16, "bf16": Q.BF16, "q8_0": Q.Q8_0}
OUTTYPE_CHOICES = (*OUTTYPES, "auto")
# general.file_type: what the bulk of the file is.
FILE_TYPES: dict[Q, gguf.LlamaFileType] = {
    Q.F32: gguf.LlamaFileType.ALL_F32,
    Q.F16: gguf.LlamaFileType.MOSTLY_F16,
    Q.BF16: gguf.LlamaFileType.MOSTLY_BF16,
    Q.Q8_0: gguf.LlamaFileType.MOSTLY_Q8_0,
}
# "auto" keeps everything the checkpoint has: a 16-bit checkpoint stays in its 16-bit type, and an
# f32 one becomes f16 (the precision llama.cpp computes most matmuls in anyway).
AUTO_BY_SOURCE: dict[str, Q] = {"BF16": Q.BF16, "F16": Q.F16, "F32": Q.F16}


def resolve_outtype(outtype: str, source_dtypes: set[str]) -> Q:
    """The bulk tensor type for `--outtype` given the checkpoint's dtypes."""
    if outtype == "auto":
        for dtype in ("BF16", "F16", "F32"):
            if dtype in source_dtypes:
                return AUTO_BY_SOURCE[dtype]
        return Q.F16
    if outtype not in OUTTYPES:
        raise BadInputError(f"unknown output type '{outtype}'; choose one of {', '.join(OUTTYPE_CHOICES)}")
    return OUTTYPES[outtype]


def tensor_type(bulk: Q, shape: tuple[int, ...]) -> Q:
    """1-D tensors (norms, rope factors) stay f32, as llama.cpp computes them in f32; q8_0 needs rows of 32."""
    if len(shape) < 2:
        return Q.F32
    if bulk == Q.Q8_0 and shape[-1] % gguf.GGML_QUANT_SIZES[Q.Q8_0][0] != 0:
        return Q.F16
    return bulk


def stored_shape(shape: tuple[int, ...], qtype: Q) -> tuple[tuple[int, ...], np.dtype]:
    """The numpy shape and dtype of the bytes written for a tensor (what GGUFWriter is told)."""
    if qtype == Q.F32:
        return shape, np.dtype(np.float32)
    if qtype == Q.F16:
        return shape, np.dtype(np.float16)
    return tuple(gguf.quant_shape_to_byte_shape(shape, qtype)), np.dtype(np.uint8)


# Rows converted per step: float32 copies and quantization temporaries stay ~16 MB however large
# the tensor, so peak memory is the source view plus the encoded output.
CHUNK_ELEMENTS = 1 << 22


def encode_blocks(
    values: np.ndarray, source_dtype: str, qtype: Q, done: Callable[[float], None] | None = None
) -> Iterator[np.ndarray]:
    """The tensor's values in the output type, a block of rows at a time, in order.

    The writer writes each block as it comes, so neither the whole encoded tensor nor the whole
    source is ever in memory (a 200k-token embedding is 1.2 GB at f16). `done(fraction)` is told
    how much of `values` has been consumed after each block, so a memory-mapped source can drop
    those pages while the rest is converted.
    """
    if values.ndim < 2 or values.size <= CHUNK_ELEMENTS:
        yield _encode_block(values, source_dtype, qtype)
        return
    rows = max(1, CHUNK_ELEMENTS // (values.size // values.shape[0]))
    for start in range(0, values.shape[0], rows):
        yield _encode_block(values[start : start + rows], source_dtype, qtype)
        if done:
            done(min(start + rows, values.shape[0]) / values.shape[0])


def encode(values: np.ndarray, source_dtype: str, qtype: Q, done: Callable[[float], None] | None = None) -> np.ndarray:
    """The whole tensor in the output type, as the array GGUFWriter writes (see encode_blocks)."""
    shape, _ = stored_shape(values.shape, qtype)
    blocks = list(encode_blocks(values, source_dtype, qtype, done))
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks).reshape(shape)


def _encode_block(values: np.ndarray, source_dtype: str, qtype: Q) -> np.ndarray:
    if qtype == Q.F16 and source_dtype == "F16":
        return np.ascontiguousarray(values)
    if qtype == Q.BF16:
        bits = values if source_dtype == "BF16" else float32_to_bf16_bits(to_float32(values, source_dtype))
        return np.ascontiguousarray(bits).view(np.uint8)
    if qtype == Q.F16 and source_dtype == "BF16":
        return bf16_bits_to_float16(values)
    as_f32 = to_float32(values, source_dtype)
    if qtype == Q.F32:
        return np.ascontiguousarray(as_f32)
    if qtype == Q.F16:
        return as_f32.astype(np.float16)
    return gguf.quants.quantize(as_f32, qtype)
