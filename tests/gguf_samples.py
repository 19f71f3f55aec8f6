"""Small, valid GGUF files written with gguf's GGUFWriter, for tests that need many models fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter, LlamaFileType


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


def split_gguf(source: Path, first_part: Path, max_tensors: int) -> list[Path]:
    """Rewrite a real GGUF as a split model (what gguf-split / convert --split-max-tensors make):
    part 1 carries the metadata, every part up to `max_tensors` tensors. Returns the parts in order."""
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(source)
    writer = GGUFWriter(first_part, reader.fields["general.architecture"].contents(), split_max_tensors=max_tensors)
    for field in reader.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF."):
            continue  # GGUFWriter writes these itself
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), value_type, sub_type=sub_type)
    for tensor in reader.tensors:
        writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    stem = first_part.name.removesuffix(".gguf")
    return sorted(first_part.parent.glob(f"{stem}-*-of-*.gguf"))
