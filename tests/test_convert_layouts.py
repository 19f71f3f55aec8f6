"""Every supported layout, from small random checkpoints written by real torch/transformers.

Each is converted to f32 and run by llama.cpp; its logits must match transformers' on the same
token ids (greedy top-1 at every position, max |diff| < 1e-3), and its tokenizer must give the
source tokenizer's ids. f16/bf16 checkpoints are compared with transformers upcasting the same
16-bit weights to fp32, so reading them must be exact.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from llamadesk.convert import convert_checkpoint, plan_conversion
from tests.fixtures.logits_reference import llama_cpp_logits, llama_cpp_tokenize, transformers_logits
from tests.fixtures.random_checkpoints import build

PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Bonjour, je m'appelle Marie. 我们今天去北京。 def add(a, b): return a + b 🙂",
]
# checkpoint -> the HF folder transformers loads as the reference (Meta's twin for the Meta layout)
LAYOUTS = {
    "llama2_spm": "llama2_spm",
    "llama2_bin": "llama2_bin",  # f16 weights, pickled
    "llama2_bf16": "llama2_bf16",
    "llama2_sharded": "llama2_sharded",
    "llama3": "llama3",
    "mistral": "mistral",
    "meta_2shards": "meta_reference",
}


def source_ids(folder: Path, text: str) -> list[int]:
    """The source tokenizer's ids, run by its own library (SentencePiece's when there is a tokenizer.model)."""
    if not (folder / "tokenizer.model").exists():
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(folder / "tokenizer.json")).encode(text).ids
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    return [processor.bos_id(), *processor.encode(text)]


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_layout_logits_and_tokens_match_the_source(layout, checkpoints_root, tmp_path):
    folder = build(layout, checkpoints_root)
    reference = build(LAYOUTS[layout], checkpoints_root)
    output = convert_checkpoint(folder, tmp_path / f"{layout}.gguf", outtype="f32")
    sequences = [source_ids(folder, text) for text in PROMPTS]
    for text, ids, got in zip(PROMPTS, sequences, llama_cpp_logits(output, sequences), strict=False):
        assert llama_cpp_tokenize(output, text) == ids, text
        if (folder / "tokenizer_config.json").exists():  # and as transformers tokenizes it
            from transformers import AutoTokenizer

            assert AutoTokenizer.from_pretrained(folder)(text)["input_ids"] == ids, text
        expected = transformers_logits(reference, ids)
        assert got.shape == expected.shape
        assert (got.argmax(-1) == expected.argmax(-1)).all()
        assert np.abs(got - expected).max() < 1e-3


def _metadata(path: Path) -> dict:
    reader = gguf.GGUFReader(path)
    return {f.name: f.contents() for f in reader.fields.values() if not f.name.startswith("tokenizer.ggml.")}, reader


@pytest.mark.slow
def test_llama3_layout_records_gqa_head_dim_rope_scaling_and_tied_embeddings(checkpoints_root, tmp_path):
    folder = build("llama3", checkpoints_root)
    metadata, reader = _metadata(convert_checkpoint(folder, tmp_path / "l3.gguf", outtype="f16"))
    names = {t.name: t for t in reader.tensors}
    assert metadata["llama.attention.head_count"] == 4 and metadata["llama.attention.head_count_kv"] == 2
    assert metadata["llama.attention.key_length"] == 32 and metadata["llama.rope.dimension_count"] == 32
    assert metadata["llama.rope.freq_base"] == 500000.0
    assert "output.weight" not in names  # tied: llama.cpp reuses token_embd
    factors = names["rope_freqs.weight"].data
    assert factors.shape == (16,) and factors[0] == 1.0 and factors[-1] == 8.0
    assert names["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert names["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert metadata["tokenizer.chat_template"].startswith("{% for m in messages %}")


@pytest.mark.slow
def test_llama3_tokenizer_metadata(checkpoints_root, tmp_path):
    folder = build("llama3", checkpoints_root)
    reader = gguf.GGUFReader(convert_checkpoint(folder, tmp_path / "l3.gguf", outtype="f32"))
    fields = {f.name: f.contents() for f in reader.fields.values()}
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "llama-bpe"
    assert fields["tokenizer.ggml.add_bos_token"] is True
    assert fields["tokenizer.ggml.bos_token_id"] == 0 and fields["tokenizer.ggml.eos_token_id"] == 2
    assert len(fields["tokenizer.ggml.merges"]) > 100
    assert "<|eot_id|>" in fields["tokenizer.chat_template"]


@pytest.mark.slow
def test_sentencepiece_tokenizer_metadata(checkpoints_root, tmp_path):
    folder = build("llama2_spm", checkpoints_root)
    reader = gguf.GGUFReader(convert_checkpoint(folder, tmp_path / "l2.gguf", outtype="f32"))
    fields = {f.name: f.contents() for f in reader.fields.values()}
    assert fields["tokenizer.ggml.model"] == "llama"
    assert fields["tokenizer.ggml.tokens"][:3] == ["<unk>", "<s>", "</s>"]
    assert fields["tokenizer.ggml.token_type"][:4] == [2, 3, 3, 6]  # unknown, control, control, byte
    assert len(fields["tokenizer.ggml.scores"]) == len(fields["tokenizer.ggml.tokens"])
    assert fields["tokenizer.ggml.add_bos_token"] is True and fields["tokenizer.ggml.add_eos_token"] is False


@pytest.mark.slow
@pytest.mark.parametrize("outtype, tolerance", [("f16", 0.1), ("bf16", 0.3), ("q8_0", 0.3)])
def test_reduced_precision_outtypes_stay_close(outtype, tolerance, checkpoints_root, tmp_path):
    folder = build("llama2_spm", checkpoints_root)
    output = convert_checkpoint(folder, tmp_path / f"{outtype}.gguf", outtype=outtype)
    ids = source_ids(folder, PROMPTS[0])
    diff = np.abs(llama_cpp_logits(output, [ids])[0] - transformers_logits(folder, ids)).max()
    assert diff < tolerance
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(output).tensors}
    assert types["blk.0.ffn_up.weight"] == outtype.upper() and types["output_norm.weight"] == "F32"


@pytest.mark.slow
def test_plan_describes_output_without_reading_weights(checkpoints_root, tmp_path):
    plan = plan_conversion(build("meta_2shards", checkpoints_root), "f16")
    assert plan.checkpoint.config.architecture.permute_qk is False
    shapes = {t.name: t.shape for t in plan.tensors}
    assert shapes["token_embd.weight"] == (420, 64) and shapes["blk.1.attn_k.weight"] == (32, 64)
    output = convert_checkpoint(plan.checkpoint.folder, tmp_path / "m.gguf", outtype="f16")
    assert abs(output.stat().st_size - plan.estimated_size) < 0.05 * plan.estimated_size


@pytest.mark.slow
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_numpy_reference_forward_matches_transformers(layout, checkpoints_root):
    """The reference --verify trusts is itself checked against transformers on every layout."""
    from llamadesk.convert.checkpoint import open_checkpoint
    from llamadesk.convert.reference_forward import reference_logits

    ids = source_ids(build(layout, checkpoints_root), PROMPTS[1])
    expected = transformers_logits(build(LAYOUTS[layout], checkpoints_root), ids)
    assert np.abs(reference_logits(open_checkpoint(build(layout, checkpoints_root)), ids) - expected).max() < 1e-4


@pytest.mark.slow
def test_logit_verification_catches_a_missing_qk_permutation(checkpoints_root, tmp_path):
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import LoadSettings
    from llamadesk.convert import write_gguf
    from llamadesk.convert.architectures import LLAMA_META
    from llamadesk.convert.plan import plan_tensors
    from llamadesk.convert.verify import compare_logits

    folder = build("llama3", checkpoints_root)
    ids = source_ids(folder, PROMPTS[0])
    good = plan_conversion(folder, "f32")
    bad = plan_conversion(folder, "f32")
    right = bad.checkpoint.config.architecture
    bad.checkpoint.config.architecture = LLAMA_META  # writes Q/K without undoing transformers' order
    bad.tensors = plan_tensors(bad.checkpoint, bad.bulk_type, bad.n_vocab)
    bad.checkpoint.config.architecture = right
    results = {}
    for name, plan in (("good", good), ("bad", bad)):
        path = write_gguf(plan, tmp_path / f"{name}.gguf")
        with Engine.load(path, LoadSettings(n_ctx=64)) as engine:
            results[name] = compare_logits(plan.checkpoint, ids, engine.position_logits, plan.bulk_type)
    assert results["good"].ok and results["good"].max_abs_diff < 0.05
    assert not results["bad"].ok and results["bad"].relative_rms > 0.1


@pytest.mark.slow
def test_auto_outtype_keeps_the_checkpoints_16_bit_type_and_license_is_recorded(checkpoints_root, tmp_path):
    import shutil

    folder = Path(shutil.copytree(build("llama2_bf16", checkpoints_root), tmp_path / "bf16"))
    (folder / "README.md").write_text("---\nlicense: apache-2.0\ntags: [test]\n---\n# A model\n")
    reader = gguf.GGUFReader(convert_checkpoint(folder, tmp_path / "auto.gguf"))
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.BF16
    assert types["blk.0.attn_norm.weight"] == gguf.GGMLQuantizationType.F32
    fields = {f.name: f.contents() for f in reader.fields.values() if f.name.startswith("general.")}
    assert fields["general.license"] == "apache-2.0" and fields["general.file_type"] == gguf.LlamaFileType.MOSTLY_BF16


def test_verify_asks_for_the_added_tokens_it_can_compare(tmp_path):
    """added_token_texts: one text per added token of a tokenizer.json, except those whose match
    also takes the spaces beside them (rules llama.cpp keeps only for a few models); none for a
    SentencePiece source, whose reference library does not parse added tokens in text."""
    from tokenizers import AddedToken, Tokenizer, models

    from llamadesk.convert.verify import added_token_texts

    tokenizer = Tokenizer(models.BPE())
    tokenizer.add_special_tokens([AddedToken("<|start|>"), AddedToken("<|end|>", rstrip=True)])
    tokenizer.add_tokens([AddedToken("<tool>"), AddedToken("word", single_word=True)])
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    assert added_token_texts(tmp_path, "gpt2") == ("Hello<|start|>world", "Hello<tool>world")
    assert added_token_texts(tmp_path, "llama") == ()
