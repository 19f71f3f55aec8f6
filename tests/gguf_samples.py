"""Small, valid GGUF files written with gguf's GGUFWriter, for tests that need many models fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter, LlamaFileType


def tiny_gguf_bytes(tmp_dir: Path, name: str, file_type: str = "Q4_K_M", floats: int = 4096,
                    split: tuple[int, int] | None = None) -> bytes:
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
