"""Small, valid GGUF files written with gguf's GGUFWriter, for tests that need many models fast."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFValueType, GGUFWriter, LlamaFileType


def tiny_gguf_bytes(
    tmp_dir: Path, name: str, file_type: str = "Q4_K_M", floats: int = 4096, split: tuple[int, int] | None = None
) -> bytes:
    """A llama-architecture GGUF header with one f32 tensor of `floats` values (not runnable,
    but every reader llamadesk uses accepts it). `split=(index, count)` writes a split part:
    only part 1 carries the model metadata, as llama.cpp's gguf-split does."""
    path = tmp_dir / name
    writer = GGUFWriter(path, "llama")
    if split is None or split[0] == 1:
        writer.add_name(name)
        writer.add_context_length(2048)
        writer.add_embedding_length(64)
        writer.add_block_count(2)
        writer.add_head_count(4)
        writer.add_head_count_kv(2)
        writer.add_file_type(LlamaFileType[f"MOSTLY_{file_type}"].value)
    if split is not None:
        writer.add_uint16("split.no", split[0] - 1)
        writer.add_uint16("split.count", split[1])
        writer.add_int32("split.tensors.count", split[1])
    index = split[0] if split else 1
    writer.add_tensor(f"blk.{index - 1}.ffn_up.weight", np.arange(floats, dtype=np.float32).reshape(64, -1))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def write_out(writer: GGUFWriter) -> None:
    """Write everything added to `writer` (header, metadata, tensors) and close it."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def copy_metadata(reader, writer: GGUFWriter) -> None:
    """Every key of a GGUFReader's file into a GGUFWriter, with its type (the writer adds its own)."""
    for field in reader.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF."):
            continue  # GGUFWriter writes these itself
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)


def split_gguf(source: Path, first_part: Path, max_tensors: int) -> list[Path]:
    """Rewrite a real GGUF as a split model (what gguf-split / convert --split-max-tensors make):
    part 1 carries the metadata, every part up to `max_tensors` tensors. Returns the parts in order."""
    from gguf import GGUFReader

    reader = GGUFReader(source)
    writer = GGUFWriter(first_part, reader.fields["general.architecture"].contents(), split_max_tensors=max_tensors)
    copy_metadata(reader, writer)
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    stem = first_part.name.removesuffix(".gguf")
    return sorted(first_part.parent.glob(f"{stem}-*-of-*.gguf"))


class _EmptyArrayWriter(GGUFWriter):
    """GGUFWriter that also writes an empty array (it refuses them; damaged files hold them)."""

    def _pack_val(
        self, val: Any, vtype: GGUFValueType, add_vtype: bool, sub_type: GGUFValueType | None = None
    ) -> bytes:
        if vtype == GGUFValueType.ARRAY and len(val) == 0:
            return struct.pack("<IIQ", GGUFValueType.ARRAY, sub_type, 0)
        return super()._pack_val(val, vtype, add_vtype, sub_type)


@dataclasses.dataclass
class TinyModel:
    """A two-layer model GGUF that every llamadesk check accepts (embedding 8, 2 heads of 4, one KV
    head, feed-forward 16, a six-token byte-level BPE vocabulary); a test changes one key or tensor
    and writes it. Not runnable: llama.cpp would miss tensors the checks do not require.

    `metadata` maps each key to (value, GGUF type, item type for arrays); `tensors` maps each name to
    its data, in numpy order (ggml's shape is the reverse: token_embd.weight is [8, 6])."""

    architecture: str = "llama"
    metadata: dict[str, tuple[Any, GGUFValueType, GGUFValueType | None]] = dataclasses.field(default_factory=dict)
    tensors: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    # Tensors whose data is already in a ggml type (their bytes, as GGUFWriter's raw_dtype takes them).
    raw_types: dict[str, GGMLQuantizationType] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        u32, f32, string, array = (
            GGUFValueType.UINT32,
            GGUFValueType.FLOAT32,
            GGUFValueType.STRING,
            GGUFValueType.ARRAY,
        )
        arch = self.architecture
        defaults = {
            "general.architecture": (arch, string, None),
            "general.name": ("tiny", string, None),
            f"{arch}.context_length": (256, u32, None),
            f"{arch}.embedding_length": (8, u32, None),
            f"{arch}.block_count": (2, u32, None),
            f"{arch}.feed_forward_length": (16, u32, None),
            f"{arch}.attention.head_count": (2, u32, None),
            f"{arch}.attention.head_count_kv": (1, u32, None),
            f"{arch}.rope.dimension_count": (4, u32, None),
            f"{arch}.attention.layer_norm_rms_epsilon": (1e-5, f32, None),
            "tokenizer.ggml.model": ("gpt2", string, None),
            "tokenizer.ggml.pre": ("default", string, None),
            "tokenizer.ggml.tokens": (["<s>", "</s>", "a", "b", "ab", "c"], array, string),
            "tokenizer.ggml.token_type": ([3, 3, 1, 1, 1, 1], array, GGUFValueType.INT32),
            "tokenizer.ggml.merges": (["a b"], array, string),
            "tokenizer.ggml.bos_token_id": (0, u32, None),
            "tokenizer.ggml.eos_token_id": (1, u32, None),
        }
        self.metadata = {**defaults, **self.metadata}

        def weights(*shape: int) -> np.ndarray:
            return np.zeros(shape, dtype=np.float32)

        defaults_tensors = {
            "token_embd.weight": weights(6, 8),
            "output_norm.weight": weights(8),
            "blk.0.attn_norm.weight": weights(8),
            "blk.0.attn_q.weight": weights(8, 8),
            "blk.0.attn_k.weight": weights(4, 8),
            "blk.0.ffn_down.weight": weights(8, 16),
            "blk.1.ffn_up.weight": weights(16, 8),
        }
        self.tensors = {**defaults_tensors, **self.tensors}

    def set(self, key: str, value: Any, vtype: GGUFValueType, item: GGUFValueType | None = None) -> TinyModel:
        self.metadata[key] = (value, vtype, item)
        return self

    def drop(self, key: str) -> TinyModel:
        self.metadata.pop(key, None)
        self.tensors.pop(key, None)
        return self

    def write(self, path: Path, split_max_tensors: int = 0) -> Path:
        """Write the file (or, with `split_max_tensors`, the parts gguf-split would); returns `path`."""
        writer = _EmptyArrayWriter(path, self.architecture, split_max_tensors=split_max_tensors)
        writer.kv_data[0].clear()  # general.architecture is in `metadata`: a test may change or drop it
        for key, (value, vtype, item) in self.metadata.items():
            writer.add_key_value(key, value, vtype, sub_type=item)
        for name, data in self.tensors.items():
            writer.add_tensor(name, data, raw_dtype=self.raw_types.get(name))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path
