"""Meta's original LLaMA layout: `consolidated.NN.pth` model-parallel shards plus `params.json`.

Each shard holds a slice of every large matrix, cut the way Meta's model-parallel layers cut
them: column-parallel layers (wq, wk, wv, w1, w3, output) along the output axis 0, row-parallel
layers (wo, w2) along the input axis 1, norms replicated. The token embedding was cut along the
embedding axis in Llama 1/2 and along the vocabulary in Llama 3, so its axis is read off the shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llamadesk.app.core.errors import BadInputError
from llamadesk.convert.tensor_source import TensorSource
from llamadesk.convert.torch_zip_reader import read_torch_zip

# Merge axis by the last component of the tensor name ("layers.0.attention.wq.weight" -> "wq").
MERGE_AXIS: dict[str, int] = {"wq": 0, "wk": 0, "wv": 0, "w1": 0, "w3": 0, "output": 0, "wo": 1, "w2": 1}


def _merge_axis(name: str, shard_shape: tuple[int, ...], n_embd: int) -> int | None:
    """The axis shards of `name` are concatenated along; None when every shard holds all of it."""
    if len(shard_shape) < 2:
        return None
    role = name.removesuffix(".weight").rsplit(".", 1)[-1]
    if role == "tok_embeddings":
        return 0 if shard_shape[1] == n_embd else 1
    if role not in MERGE_AXIS:
        raise BadInputError(
            f"consolidated shards: do not know how {name} was split; llamadesk converts Meta LLaMA checkpoints"
        )
    return MERGE_AXIS[role]


def _merged(name: str, parts: list[TensorSource], axis: int | None) -> TensorSource:
    if axis is None:
        return parts[0]
    shape = list(parts[0].shape)
    shape[axis] = sum(p.shape[axis] for p in parts)

    def read() -> np.ndarray:
        return np.concatenate([p.read() for p in parts], axis=axis)

    def release(fraction: float = 1.0) -> None:
        for p in parts:
            p.release(1.0)  # read() copied every part into the merged array

    return TensorSource(name, tuple(shape), parts[0].dtype, read, release)


def meta_shard_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("consolidated.*.pth"))


def _check_parts(name: str, parts: list[TensorSource], axis: int | None, files: list[Path]) -> None:
    """Every shard's slice of `name` must have the same type, and the same shape except along `axis`."""
    first = parts[0]
    for f, part in zip(files[1:], parts[1:], strict=True):
        same_rest = len(part.shape) == len(first.shape) and all(
            a == b for k, (a, b) in enumerate(zip(part.shape, first.shape, strict=True)) if k != axis
        )
        if part.dtype != first.dtype or not same_rest:
            raise BadInputError(
                f"{f}: {name} is {part.dtype} {list(part.shape)} but {first.dtype} {list(first.shape)} in "
                f"{files[0].name}; the shards do not belong together"
            )


def read_meta_shards(files: list[Path], n_embd: int) -> list[TensorSource]:
    """The full tensors of a Meta checkpoint, each merged from its shards when it is read."""
    shards: list[dict[str, TensorSource]] = [{t.name: t for t in read_torch_zip(f)} for f in files]
    names = list(shards[0])
    for f, shard in zip(files[1:], shards[1:], strict=False):
        if set(shard) != set(names):
            raise BadInputError(f"{f}: holds different tensors from {files[0].name}; the shards do not belong together")
    merged: list[TensorSource] = []
    for name in names:
        parts = [shard[name] for shard in shards]
        axis = _merge_axis(name, parts[0].shape, n_embd) if len(parts) > 1 else None
        _check_parts(name, parts, axis, files)
        merged.append(_merged(name, parts, axis))
    return merged
