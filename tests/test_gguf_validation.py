"""GGUF validation: real files written by gguf's GGUFWriter, then damaged in the ways files are."""

from __future__ import annotations

import json
import shutil
import socket
import struct
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, GGUFValueType, GGUFWriter

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.gguf_file import format_parameter_count, inspect_gguf, plain_value
from llamadesk.app.core.gguf_header import read_gguf_header
from llamadesk.app.core.gguf_requirements import ADVICE
from tests.gguf_samples import TinyModel, write_out

U32, I32, F32, STR, ARR = (
    GGUFValueType.UINT32,
    GGUFValueType.INT32,
    GGUFValueType.FLOAT32,
    GGUFValueType.STRING,
    GGUFValueType.ARRAY,
)


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
    write_out(writer)
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
        (lambda b: b[:8] + struct.pack("<Q", 2**40) + b[16:], "1,099,511,627,776 tensors and"),
        (lambda b: b[:8] + struct.pack("<Q", 60_000) + b[16:], "more than its"),
    ],
    ids=["half", "header-only", "bad-version", "bad-magic", "absurd-tensor-count", "tensor-count-past-the-file"],
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


def test_summary_of_a_small_model(tmp_path):
    model = TinyModel().drop("general.name")
    # Per layer, as an array (llama.cpp needs the same KV head count in every layer of a llama).
    model.set("llama.attention.head_count_kv", [1, 1], ARR, U32)
    model.set("tokenizer.chat_template", "{{ messages }}", STR)
    model.set("tiny.numbers", list(range(9)), ARR, U32).set("tiny.strings", ["s"] * 9, ARR, STR)
    model.set("tiny.nan", float("nan"), F32)
    summary = inspect_gguf(model.write(tmp_path / "nameless.gguf"))
    assert summary.name == "nameless"  # no general.name: the file's name
    assert (summary.n_layers, summary.n_embd, summary.n_head, summary.n_head_kv) == (2, 8, 2, 1)
    assert (summary.head_dim_k, summary.head_dim_v, summary.context_length, summary.n_vocab) == (4, 4, 256, 6)
    assert summary.has_chat_template and summary.quantization == "F32"
    # 6x8 + 8 outside the layers; 8 + 8x8 + 8x4 + 16x8 in layer 0 and 16x8 in layer 1, all f32.
    assert summary.parameters == 416 and summary.size_label == "416"
    assert (summary.tensor_bytes, summary.repeating_tensor_bytes, summary.layer_bytes) == (1664, 1440, 720)
    # Metadata as JSON shows it: short arrays listed, long ones counted, NaN as text.
    meta = summary.metadata
    assert meta["tokenizer.ggml.tokens"] == ["<s>", "</s>", "a", "b", "ab", "c"]
    assert meta["tokenizer.ggml.token_type"] == [3, 3, 1, 1, 1, 1]
    assert meta["llama.attention.head_count_kv"] == [1, 1]
    assert (meta["tiny.numbers"], meta["tiny.strings"], meta["tiny.nan"]) == ("[9 numbers]", "[9 strings]", "nan")
    assert json.loads(json.dumps(meta)) == meta


def test_head_size_without_key_length_comes_from_layer_0s_head_count(tmp_path):
    # As llama.cpp derives it (n_embd / n_head of layer 0): 8 / 1, not 8 / 2 from the largest count,
    # which would halve the KV cache estimate of a model whose later layers have more heads.
    model = TinyModel(tensors={"blk.0.attn_k.weight": np.zeros((8, 8), dtype=np.float32)})
    model.set("llama.attention.head_count", [1, 2], ARR, U32).set("llama.rope.dimension_count", 8, U32)
    summary = inspect_gguf(model.write(tmp_path / "heads.gguf"))
    assert (summary.n_head, summary.head_dim_k, summary.head_dim_v) == (2, 8, 8)


@pytest.mark.parametrize(
    "value, plain",
    [(np.uint64(2**40), 2**40), (np.float32(0.5), 0.5), (np.float64("-inf"), "-inf"), (np.bool_(True), True)],
)
def test_numpy_scalars_become_json_values(value, plain):
    assert plain_value(value) == plain and type(plain_value(value)) is type(plain)


def test_layer_size_without_per_layer_tensors_is_an_even_share(tmp_path):
    model = TinyModel()
    for name in [name for name in model.tensors if name.startswith("blk.")]:
        model.drop(name)
    summary = inspect_gguf(model.write(tmp_path / "tiny.gguf"))
    assert summary.repeating_tensor_bytes == 0 and summary.tensor_bytes == (48 + 8) * 4
    assert summary.layer_bytes == (48 + 8) * 4 // 2


@pytest.mark.parametrize(
    "n, label",
    [(0, "0"), (999, "999"), (1_500, "1.5K"), (135_000_000, "135M"), (6_740_000_000, "6.7B"), (7e10, "70B")],
)
def test_parameter_counts_read_as_people_say_them(n, label):
    assert format_parameter_count(n) == label


def half_precision(model: TinyModel) -> TinyModel:
    """Feed-forward weights (256 of the 2-D weights' 400 values) in f16."""
    model.tensors["blk.0.ffn_down.weight"] = model.tensors["blk.0.ffn_down.weight"].astype(np.float16)
    model.tensors["blk.1.ffn_up.weight"] = model.tensors["blk.1.ffn_up.weight"].astype(np.float16)
    return model


@pytest.mark.parametrize(
    "change, quantization",
    [
        (lambda m: m.set("general.file_type", 7, U32), "Q8_0"),  # what the file says, when it says it
        (lambda m: half_precision(m).set("general.file_type", 9999, U32), "F16"),  # else the most common type
        (lambda m: half_precision(m).set("general.file_type", [7], ARR, U32), "F16"),
        (half_precision, "F16"),
        (lambda m: m, "F32"),
    ],
    ids=["file-type", "unknown-file-type", "file-type-array", "no-file-type", "f32"],
)
def test_quantization_shown(tmp_path, change, quantization):
    summary = inspect_gguf(change(TinyModel()).write(tmp_path / "tiny.gguf"), loadable=False)
    assert summary.quantization == quantization


def test_quantization_of_a_file_without_weights_is_unknown(tmp_path):
    model = TinyModel()
    model.tensors = {"output_norm.weight": model.tensors["output_norm.weight"]}  # no 2-D tensor
    assert inspect_gguf(model.write(tmp_path / "tiny.gguf"), loadable=False).quantization == "unknown"


def test_paths_that_are_not_gguf_files(tmp_path):
    with pytest.raises(BadInputError) as err:
        inspect_gguf(tmp_path / "absent.gguf")
    assert str(err.value) == f"{tmp_path / 'absent.gguf'}: no such file; give a path to a .gguf file or a model name"
    with pytest.raises(BadInputError) as err:
        inspect_gguf(tmp_path)
    assert str(err.value) == f"{tmp_path} is a folder, not a GGUF file"
    # A socket exists and is not a folder; it is refused before anything opens it (a FIFO would
    # block the open forever, tests below).
    socket_path = tmp_path / "model.gguf"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(socket_path))
        with pytest.raises(BadInputError) as err:
            inspect_gguf(socket_path)
    assert str(err.value) == f"{socket_path} is not a regular file (a FIFO, socket or device), not a GGUF file"


def without_tensors(model: TinyModel) -> TinyModel:
    model.tensors.clear()
    return model


@pytest.mark.parametrize(
    "change, message",
    [
        (without_tensors, "{path} holds no tensors; it is not a model"),
        (
            lambda m: m.drop("general.architecture"),
            "{path}: general.architecture is missing; it is not a model llamadesk can run",
        ),
        (
            lambda m: m.set("general.architecture", 1, U32),
            "{path}: general.architecture is a uint32, not a string; it is not a model llamadesk can run",
        ),
        (
            lambda m: m.set("llama.attention.head_count", "2", STR),
            "{path}: llama.attention.head_count is a string, not a whole number; " + ADVICE,
        ),
        (
            lambda m: m.set("llama.block_count", [2], ARR, U32),  # only per-layer keys may be arrays
            "{path}: llama.block_count is an array of uint32, not a whole number; " + ADVICE,
        ),
        (
            lambda m: m.set("llama.context_length", 2**24 + 1, U32),
            "{path}: llama.context_length is 16777217; it must be 1 to 16,777,216; " + ADVICE,
        ),
        (
            lambda m: m.set("llama.attention.head_count", [2, -1], ARR, I32),
            "{path}: llama.attention.head_count is -1; it must be 0 to 65,536; " + ADVICE,
        ),
        (
            lambda m: m.set("llama.block_count", 0, U32),
            "{path}: llama.block_count is 0; it must be 1 to 512; " + ADVICE,
        ),
    ],
    ids=[
        "no-tensors",
        "no-architecture",
        "architecture-number",
        "head_count-string",
        "block_count-array",
        "context_length-2^24+1",
        "head_count-negative-in-layer-1",
        "block_count-0",
    ],
)
def test_what_even_a_listing_needs(tmp_path, change, message):
    """The summary's own values are checked when a folder is listed (loadable=False), too."""
    path = change(TinyModel()).write(tmp_path / "tiny.gguf")
    with pytest.raises(BadInputError) as err:
        inspect_gguf(path, loadable=False)
    assert str(err.value) == message.format(path=path)


def test_a_listing_shows_a_model_that_would_not_load(tmp_path):
    path = TinyModel().set("tokenizer.ggml.tokens", ["a"] * 6, ARR, STR).write(tmp_path / "twice.gguf")
    assert inspect_gguf(path, loadable=False).n_vocab == 6
    with pytest.raises(BadInputError, match="holds the token 'a' twice"):
        inspect_gguf(path)


def test_a_fifo_named_like_a_model_is_refused_not_waited_on(tmp_path):
    # Opening it blocked `info`, `chat -m` and `eval` until killed: a FIFO waits for a writer.
    import os

    from tests.conftest import assert_one_clear_line, run_cli

    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    for argv in (["info", str(fifo)], ["chat", "-m", str(fifo), "Hi"]):
        assert_one_clear_line(run_cli(*argv, timeout=60), 2, "is not a regular file")
