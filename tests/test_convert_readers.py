"""The torch-free readers against torch itself: dtypes, layouts, and the pickle refusal."""

from __future__ import annotations

import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from llamadesk.app.core.errors import BadInputError
from llamadesk.convert.pretokenizers import llama_cpp_pre_tokenizer
from llamadesk.convert.rotary import llama3_rope_factors
from llamadesk.convert.safetensors_reader import read_safetensors
from llamadesk.convert.sentencepiece_model import read_sentencepiece_model
from llamadesk.convert.tensor_source import float32_to_bf16_bits, to_float32
from llamadesk.convert.torch_zip_reader import UnsafePickleError, read_torch_zip
from tests.fixtures.random_checkpoints import train_sentencepiece


def _as_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.float().numpy()


@pytest.fixture
def tensors() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {
        "f32": torch.randn(6, 10),
        "f16": torch.randn(4, 8).half(),
        "bf16": (torch.randn(3, 16) * 1000).bfloat16(),
        "norm": torch.randn(8),
    }


def test_safetensors_values_match_torch(tensors, tmp_path):
    save_file(tensors, tmp_path / "m.safetensors")
    read = {t.name: t for t in read_safetensors(tmp_path / "m.safetensors")}
    for name, tensor in tensors.items():
        assert read[name].shape == tuple(tensor.shape)
        assert np.array_equal(to_float32(read[name].read(), read[name].dtype), _as_numpy(tensor))


def test_bf16_rounding_matches_torch():
    values = np.concatenate(
        [
            np.random.default_rng(0).standard_normal(10000).astype(np.float32) * 100,
            np.array([0.0, -0.0, np.inf, -np.inf, 1e-40, 3.0e38, 1.00390625, 1.01171875], dtype=np.float32),
        ]
    )
    expected = torch.from_numpy(values).bfloat16().view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(float32_to_bf16_bits(values), expected)
    assert np.isnan(to_float32(float32_to_bf16_bits(np.array([np.nan], dtype=np.float32)), "BF16")).all()


def test_bf16_to_f16_table_equals_torchs_conversion_on_every_bf16_value():
    """All 65536 bit patterns (normals, subnormals, overflow to inf, NaN) against torch's bf16 -> f16."""
    from llamadesk.convert.tensor_source import bf16_bits_to_float16

    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).reshape(256, 256)
    got = bf16_bits_to_float16(every)
    expected = torch.from_numpy(every.view(np.int16)).view(torch.bfloat16).to(torch.float16).numpy()
    assert got.dtype == np.float16 and got.shape == (256, 256)
    nan = np.isnan(expected)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got.view(np.uint16)[~nan], expected.view(np.uint16)[~nan])


def test_array_packing_writer_writes_gguf_pys_bytes():
    """Every kind of metadata array the converter writes, packed whole, equals gguf-py's item-by-item
    packing; what it does not handle (or gguf-py refuses) goes to gguf-py."""
    import gguf

    from llamadesk.convert.gguf_array_packing import ArrayPackingWriter

    arrays = [
        ["<s>", "héllo", "我们", "🎉", "", "a b"],
        [b"\x00\xff", b"plain", bytearray(b"xy")],
        [0.0, -1.5, 1e-30, 3.0e38, float("inf")],
        [gguf.TokenType.NORMAL, gguf.TokenType.CONTROL, 3, 2**31 - 1, -(2**31)],
        [True, False, True],
        ["Ġ t", "h e"] * 1000,
        [[1, 2], [3]],  # nested: left to gguf-py
    ]
    plain, fast = gguf.GGUFWriter(None, "llama"), ArrayPackingWriter(None, "llama")
    for values in arrays:
        expected = plain._pack_val(values, gguf.GGUFValueType.ARRAY, add_vtype=True)
        assert fast._pack_val(values, gguf.GGUFValueType.ARRAY, add_vtype=True) == expected
    typed = fast._pack_val([1, 2, 300], gguf.GGUFValueType.ARRAY, True, gguf.GGUFValueType.UINT32)
    assert typed == plain._pack_val([1, 2, 300], gguf.GGUFValueType.ARRAY, True, gguf.GGUFValueType.UINT32)
    for refused in ([1, "a"], [2**31], [1.0, 4e38]):  # mixed; out of int32's, float32's range
        with pytest.raises((ValueError, OverflowError, struct.error)) as by_gguf:
            plain._pack_val(refused, gguf.GGUFValueType.ARRAY, add_vtype=True)
        with pytest.raises(by_gguf.type):
            fast._pack_val(refused, gguf.GGUFValueType.ARRAY, add_vtype=True)


def test_torch_zip_reads_views_strides_and_nested_dicts(tmp_path):
    torch.manual_seed(1)
    base = torch.randn(5, 7)
    state = {
        "model": {
            "a": base,
            "b": base.t(),
            "c": base[2:],
            "d": torch.randn(4).bfloat16(),
            "step": 3,
            "ids": torch.arange(5),
        }
    }
    torch.save(state, tmp_path / "c.pth")
    read = {t.name: t for t in read_torch_zip(tmp_path / "c.pth")}
    assert set(read) == {"model.a", "model.b", "model.c", "model.d"}  # integer buffers are not weights
    for name in ("a", "b", "c", "d"):
        t = read[f"model.{name}"]
        assert np.array_equal(to_float32(t.read(), t.dtype), _as_numpy(state["model"][name]))


def test_a_float64_tensor_in_a_pickle_is_named_not_called_missing(tmp_path):
    # It was skipped like an integer buffer, and convert then said the weights had no such tensor.
    torch.save({"up.weight": torch.randn(4, 4).double(), "ids": torch.arange(3)}, tmp_path / "c.pth")
    with pytest.raises(BadInputError) as err:
        read_torch_zip(tmp_path / "c.pth")
    assert (
        str(err.value)
        == f"{tmp_path / 'c.pth'}: tensor up.weight is F64; llamadesk converts F32, F16 and BF16 checkpoints"
    )


class RunsCode:
    def __init__(self, call, argument):
        self.call, self.argument = call, argument

    def __reduce__(self):
        return self.call, (self.argument,)


@pytest.mark.parametrize("call", [os.system, eval, exec, __import__])
def test_pickle_that_names_any_other_global_is_refused_and_nothing_runs(call, tmp_path):
    marker = tmp_path / "ran"
    payload = {
        os.system: f"touch {marker}",
        eval: f"open({str(marker)!r}, 'w')",
        exec: f"open({str(marker)!r}, 'w')",
        __import__: "antigravity",
    }[call]
    torch.save({"weight": torch.ones(2), "evil": RunsCode(call, payload)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(UnsafePickleError, match="refused") as err:
        read_torch_zip(tmp_path / "pytorch_model.bin")
    assert err.value.exit_code == 2
    assert not marker.exists()


def test_truncated_files_are_reported_as_damaged(tensors, tmp_path):
    save_file(tensors, tmp_path / "m.safetensors")
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 40])
    with pytest.raises(BadInputError, match="damaged or incomplete"):
        read_safetensors(tmp_path / "cut.safetensors")
    torch.save(tensors, tmp_path / "m.bin")
    data = (tmp_path / "m.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match="damaged or incomplete"):
        read_torch_zip(tmp_path / "cut.bin")


def test_zip_that_is_not_a_checkpoint(tmp_path):
    with zipfile.ZipFile(tmp_path / "x.bin", "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(BadInputError, match="not a PyTorch checkpoint"):
        read_torch_zip(tmp_path / "x.bin")
    (tmp_path / "legacy.bin").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(BadInputError, match="old-style"):
        read_torch_zip(tmp_path / "legacy.bin")


def test_sentencepiece_reader_matches_the_sentencepiece_library(tmp_path):
    import sentencepiece as spm

    path = train_sentencepiece(tmp_path)
    model = read_sentencepiece_model(path)
    processor = spm.SentencePieceProcessor(model_file=str(path))
    assert len(model.pieces) == processor.vocab_size()
    for i in (0, 1, 2, 3, 100, processor.vocab_size() - 1):
        text, score, kind = model.pieces[i]
        assert text.decode() == processor.id_to_piece(i)
        assert score == pytest.approx(processor.get_score(i))
        assert (kind == 6) == processor.is_byte(i) and (kind == 3) == processor.is_control(i)
    assert (model.model_type, model.bos_id, model.eos_id, model.unk_id, model.pad_id) == ("bpe", 1, 2, 0, -1)
    assert model.normalization == "identity" and not model.remove_extra_whitespaces


def test_llama3_rope_factors_match_transformers():
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    scaling = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    config = LlamaConfig(hidden_size=4096, num_attention_heads=32, rope_theta=500000.0, rope_scaling=scaling)
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
    default, _ = (
        ROPE_INIT_FUNCTIONS["default"](config, "cpu")
        if "default" in ROPE_INIT_FUNCTIONS
        else (1.0 / 500000.0 ** (torch.arange(0, 128, 2).float() / 128), None)
    )
    expected = (default / scaled).numpy()
    assert np.allclose(llama3_rope_factors(128, 500000.0, scaling), expected, rtol=1e-5)


def test_pre_tokenizer_table_recognises_smollm_and_refuses_the_unknown():
    smollm = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        ],
    }
    assert llama_cpp_pre_tokenizer(smollm) == "smollm"
    assert llama_cpp_pre_tokenizer({"type": "ByteLevel", "add_prefix_space": False}) == "gpt-2"
    assert llama_cpp_pre_tokenizer({"type": "Whitespace"}) is None
    assert llama_cpp_pre_tokenizer({"type": "ByteLevel", "add_prefix_space": True}) is None


@pytest.mark.parametrize("outtype", ["f32", "f16", "bf16", "q8_0"])
def test_encoding_in_row_chunks_equals_encoding_at_once(outtype):
    from llamadesk.convert.output_types import OUTTYPES, _encode_block, encode

    values = np.random.default_rng(0).standard_normal((2100, 2048)).astype(np.float32)  # > one chunk
    for source_dtype, source in (("F32", values), ("BF16", float32_to_bf16_bits(values))):
        chunked, whole = (
            encode(source, source_dtype, OUTTYPES[outtype]),
            _encode_block(source, source_dtype, OUTTYPES[outtype]),
        )
        assert chunked.shape == whole.shape and np.array_equal(chunked.view(np.uint8), whole.view(np.uint8))


def test_hub_download_takes_one_weight_format_and_the_tokenizer():
    from llamadesk.convert.source_location import files_to_download, looks_like_repo_id

    repo = [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "tokenizer.json",
        "tokenizer_config.json",
        "original/consolidated.00.pth",
        "README.md",
        "onnx/model.onnx",
        "special_tokens_map.json",
    ]
    wanted = files_to_download(repo)
    assert "pytorch_model.bin" not in wanted and "onnx/model.onnx" not in wanted
    assert "original/consolidated.00.pth" not in wanted
    assert {"model-00001-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json", "config.json"} <= set(
        wanted
    )
    assert files_to_download(["config.json", "pytorch_model.bin", "tokenizer.model"]) == [
        "config.json",
        "tokenizer.model",
        "pytorch_model.bin",
    ]
    assert looks_like_repo_id("HuggingFaceTB/SmolLM2-135M-Instruct") and not looks_like_repo_id("./model")


@pytest.mark.parametrize(
    "rope",
    [
        {"rope_theta": 0},
        {"rope_theta": 0.0, "rope_parameters": {"rope_theta": 10000.0}},
        {"rope_parameters": {"rope_theta": 0.0}},
    ],
)
def test_a_rope_theta_of_zero_is_refused_not_taken_for_unset(tmp_path, rope):
    # `config.get("rope_theta") or ... or 10000.0` wrote 10000 for a 0, and the file converted.
    from transformers import LlamaConfig

    from llamadesk.convert.model_config import read_hf_config

    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4).to_dict()
    config.pop("rope_theta", None)
    config.pop("rope_parameters", None)
    config.update(rope, architectures=["LlamaForCausalLM"])
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(BadInputError, match="'rope_theta'"):
        read_hf_config(tmp_path)
    config.update({"rope_theta": 500000.0})
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    if "rope_parameters" not in rope:
        assert read_hf_config(tmp_path).rope_theta == 500000.0
