"""GGUF validation: real files written by gguf's GGUFWriter, then damaged in the ways files are."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, GGUFWriter

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.gguf_file import inspect_gguf
from llamadesk.app.core.gguf_header import read_gguf_header


def write_tiny_gguf(path: Path) -> Path:
    writer = GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_context_length(128)
    writer.add_block_count(1)
    writer.add_embedding_length(8)
    writer.add_head_count(2)
    writer.add_head_count_kv(1)
    writer.add_token_list(["<s>", "a", "b", "ünïcödé", "日本"])
    writer.add_tensor("token_embd.weight", np.arange(40, dtype=np.float32).reshape(5, 8))
    writer.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_header_reader_agrees_with_gguf_reader(tmp_path, smollm2_path):
    for path in (write_tiny_gguf(tmp_path / "tiny.gguf"), smollm2_path):
        ours = read_gguf_header(path)
        theirs = GGUFReader(path)
        assert [t.name for t in ours.tensors] == [t.name for t in theirs.tensors]
        assert [t.data_offset for t in ours.tensors] == [int(t.data_offset) for t in theirs.tensors]
        assert [t.n_bytes for t in ours.tensors] == [int(t.n_bytes) for t in theirs.tensors]
        assert ours.metadata["tokenizer.ggml.tokens"].decode() == theirs.get_field("tokenizer.ggml.tokens").contents()
        assert ours.metadata["general.architecture"] == "llama"


def test_summary_of_the_starter_model(smollm2_path):
    summary = inspect_gguf(smollm2_path)
    assert summary.architecture == "llama"
    assert summary.quantization == "Q4_1"
    assert summary.context_length == 8192
    assert summary.n_layers == 30 and summary.n_head_kv == 3 and summary.head_dim_k == 64
    assert 130e6 < summary.parameters < 140e6 and summary.size_label == "135M"
    assert summary.has_chat_template
    # 30 layers x 3 KV heads x (64 + 64) x 2 bytes
    from llamadesk.app.core.memory_budget import kv_bytes_per_token

    assert kv_bytes_per_token(summary, "f16") == 30 * 3 * 128 * 2


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b[:40], "truncated"),
        (lambda b: b"GGUF" + struct.pack("<I", 99) + b[8:], "version 99"),
        (lambda b: b"NOPE" + b[4:], "not a GGUF file"),
        (lambda b: b[:8] + struct.pack("<Q", 2**40) + b[16:], "more than its"),
    ],
    ids=["half", "header-only", "bad-version", "bad-magic", "absurd-tensor-count"],
)
def test_damaged_files_are_refused_with_one_line(tmp_path, damage, message):
    good = write_tiny_gguf(tmp_path / "good.gguf").read_bytes()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(damage(good))
    with pytest.raises(BadInputError) as err:
        inspect_gguf(bad)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_tensor_offset_outside_the_file_is_refused(tmp_path, smollm2_path):
    copy = tmp_path / "moved.gguf"
    shutil.copy(smollm2_path, copy)
    header = read_gguf_header(copy)
    last = header.tensors[-1]
    # Rewrite the last tensor's relative offset (the u64 after its type) to point past the end.
    data = bytearray(copy.read_bytes())
    name = last.name.encode()
    at = data.index(struct.pack("<Q", len(name)) + name)
    offset_at = at + 8 + len(name) + 4 + 8 * len(last.shape) + 4
    struct.pack_into("<Q", data, offset_at, header.file_size)
    copy.write_bytes(bytes(data))
    with pytest.raises(BadInputError, match="truncated"):
        inspect_gguf(copy)
