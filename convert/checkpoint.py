"""Find a checkpoint's weight files in a folder and open them, whichever layout it uses.

Hugging Face folders: model.safetensors, sharded safetensors with model.safetensors.index.json,
pytorch_model.bin and its sharded index, taken in the order transformers' from_pretrained takes
them, so the GGUF holds the weights transformers would load from the same folder. Meta folders:
consolidated.NN.pth with params.json.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.json_file import read_json_object
from llamadesk.app.core.value_ranges import shown
from llamadesk.convert.meta_checkpoint import meta_shard_files, read_meta_shards
from llamadesk.convert.model_config import ModelConfig, read_hf_config, read_meta_params
from llamadesk.convert.safetensors_reader import read_safetensors
from llamadesk.convert.tensor_source import TensorSource
from llamadesk.convert.torch_zip_reader import read_torch_zip


@dataclass(frozen=True)
class WeightFormat:
    """One Hugging Face weight format: its single file, its shard index, and how to read either."""

    single: str
    index: str
    read: Callable[[Path], list[TensorSource]]


# transformers' order for a local folder (modeling_utils._get_resolved_checkpoint_files, 5.x):
# model.safetensors, its index, pytorch_model.bin, its index; the first that is a file wins and
# the rest are never opened. Any other order converts different weights than the model the
# checkpoint is checked against when a leftover lies beside the real file.
HF_WEIGHT_FORMATS = (
    WeightFormat("model.safetensors", "model.safetensors.index.json", read_safetensors),
    WeightFormat("pytorch_model.bin", "pytorch_model.bin.index.json", read_torch_zip),
)


@dataclass
class Checkpoint:
    """A checkpoint folder: its hyperparameters and its (lazily read) tensors."""

    folder: Path
    config: ModelConfig
    tensors: list[TensorSource]
    weight_files: list[Path]
    notes: list[str] = field(default_factory=list)  # what the user should know about the files read


def _shards_from_index(index: Path) -> list[Path]:
    weight_map = read_json_object(index, "shard index").get("weight_map")
    if not (isinstance(weight_map, dict) and weight_map and all(isinstance(v, str) for v in weight_map.values())):
        raise BadInputError(f"{index}: not a valid shard index (expected 'weight_map' of tensor names to file names)")
    names = list(dict.fromkeys(weight_map.values()))
    for name in names:
        # Shards sit beside their index; a path would make the index point at any file on the disk.
        if name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise BadInputError(
                f"{index}: lists {shown(name)}, which is not a file name beside it; the index is damaged"
            )
    files = [index.parent / name for name in names]
    for f in files:
        if not f.is_file():
            raise BadInputError(
                f"{shown(f.name)}, listed in {index.name}, is missing from {index.parent}; download it too"
            )
    return files


def _regular_files(files: list[Path]) -> list[Path]:
    """`files` when each is a regular file; else BadInputError naming the one that is not (a folder, a FIFO)."""
    for f in files:
        if not f.is_file():
            raise BadInputError(f"{f} is not a regular file, where a weight file is expected; remove or replace it")
    return files


def _ignored_index_note(folder: Path, weights: WeightFormat) -> str:
    """The line for a folder holding both a format's single file and its shard index: which is
    read, and that the other is not (one of them is likely a leftover of an earlier save)."""
    return (
        f"{folder} holds both {weights.single} and {weights.index}: converting {weights.single}, "
        f"which transformers loads, and ignoring the index and its shards; remove whichever is a stale leftover"
    )


def _hf_weight_files(folder: Path) -> tuple[list[Path], Callable[[Path], list[TensorSource]], list[str]]:
    """The weight files to read, their reader, and notes on files left unread."""
    for weights in HF_WEIGHT_FORMATS:
        index = folder / weights.index
        if (folder / weights.single).is_file():
            notes = [_ignored_index_note(folder, weights)] if index.is_file() else []
            return [folder / weights.single], weights.read, notes
        if index.is_file():
            return _shards_from_index(index), weights.read, []
    loose = sorted(folder.glob("*.safetensors"))
    if loose:
        return _regular_files(loose), read_safetensors, []
    raise BadInputError(f"{folder}: no weights found (model.safetensors, pytorch_model.bin or their sharded index)")


def open_checkpoint(folder: Path) -> Checkpoint:
    """Open the checkpoint in `folder` (nothing large is read yet)."""
    if not folder.is_dir():
        raise BadInputError(f"{folder}: not a folder; give a checkpoint folder or a Hub repo id")
    if (folder / "config.json").is_file():
        config = read_hf_config(folder)
        files, reader, notes = _hf_weight_files(folder)
        tensors = [t for f in files for t in reader(f)]
        return Checkpoint(folder, config, tensors, files, notes)
    if meta_shard_files(folder) and (folder / "params.json").is_file():
        config = read_meta_params(folder)
        files = _regular_files(meta_shard_files(folder))
        return Checkpoint(folder, config, read_meta_shards(files, config.n_embd), files)
    raise BadInputError(
        f"{folder}: not a checkpoint folder (expected config.json with weights, or consolidated.*.pth with params.json)"
    )
