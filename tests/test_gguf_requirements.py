"""What a model GGUF must satisfy before llama.cpp sees it: one small valid model (TinyModel), changed
in one key or tensor per case, must be refused with one line naming what is wrong, or accepted."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGUFValueType

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.gguf_file import inspect_gguf
from llamadesk.app.core.gguf_requirements import ADVICE
from tests.gguf_samples import TinyModel

U8, U32, I32, U64, F32, BOOL, STR, ARR = (
    GGUFValueType.UINT8,
    GGUFValueType.UINT32,
    GGUFValueType.INT32,
    GGUFValueType.UINT64,
    GGUFValueType.FLOAT32,
    GGUFValueType.BOOL,
    GGUFValueType.STRING,
    GGUFValueType.ARRAY,
)
TOKENS = "tokenizer.ggml.tokens"


def tensor(*shape: int, dtype: type = np.float32) -> np.ndarray:
    """Tensor data in numpy order (ggml's shape is the reverse)."""
    return np.zeros(shape, dtype=dtype)


def byte_vocabulary(missing: int | None = None) -> TinyModel:
    """A SentencePiece-style ("llama" tokenizer) model: a token for every byte but `missing`,
    printable ASCII letters as themselves, the rest as "<0xNN>" (both forms serve llama.cpp)."""
    tokens: list[str] = ["<s>", "</s>"]
    for byte in range(256):
        if byte != missing:
            tokens.append(chr(byte) if chr(byte).isascii() and chr(byte).isalpha() else f"<0x{byte:02X}>")
    model = TinyModel(tensors={"token_embd.weight": tensor(len(tokens), 8)})
    model.set("tokenizer.ggml.model", "llama", STR).set(TOKENS, tokens, ARR, STR)
    return model.drop("tokenizer.ggml.token_type").drop("tokenizer.ggml.merges")


REFUSED = {
    # Each key has the one GGUF type llama.cpp reads it as, and a value in range.
    "context_length-uint64": (
        lambda m: m.set("llama.context_length", 256, U64),
        "llama.context_length is a uint64, not a uint32",
    ),
    "feed_forward_length-string": (
        lambda m: m.set("llama.feed_forward_length", "16", STR),
        "llama.feed_forward_length is a string, not a uint32 (or an array of one per layer)",
    ),
    "add_bos_token-uint8": (
        lambda m: m.set("tokenizer.ggml.add_bos_token", 1, U8),
        "tokenizer.ggml.add_bos_token is a uint8, not a bool",
    ),
    "bos_token_id-int32": (
        lambda m: m.set("tokenizer.ggml.bos_token_id", 0, I32),
        "tokenizer.ggml.bos_token_id is an int32, not a uint32",
    ),
    "head_count-3-values-for-2-layers": (
        lambda m: m.set("llama.attention.head_count", [2, 2, 2], ARR, U32),
        "llama.attention.head_count has 3 per-layer values for 2 layers",
    ),
    "feed_forward_length-per-layer-negative": (  # llama.cpp reads an int32 array as uint32
        lambda m: m.set("llama.feed_forward_length", [16, -1], ARR, I32),
        "llama.feed_forward_length is 4294967295; it must be 0 to 1,048,576",
    ),
    "expert_count-2000": (
        lambda m: m.set("llama.expert_count", 2000, U32),
        "llama.expert_count is 2000; it must be 0 to 1,024",
    ),
    "split.tensors.count-negative": (
        lambda m: m.set("split.tensors.count", -1, I32),
        "split.tensors.count is -1; it must be at least 0",
    ),
    "rope.scaling.type-unknown": (
        lambda m: m.set("llama.rope.scaling.type", "bogus", STR),
        "llama.rope.scaling.type is 'bogus', not one of none, linear, yarn, longrope",
    ),
    "rope.freq_base-infinite": (
        lambda m: m.set("llama.rope.freq_base", float("inf"), F32),
        "llama.rope.freq_base is inf, not a finite number",
    ),
    "rms_epsilon-nan": (
        lambda m: m.set("llama.attention.layer_norm_rms_epsilon", float("nan"), F32),
        "llama.attention.layer_norm_rms_epsilon is nan, not a finite number",
    ),
    "embedding_length-missing": (
        lambda m: m.drop("llama.embedding_length"),
        "llama.embedding_length is missing",
    ),
    # The asserts in llama.cpp's load_hparams.
    "nextn_predict_layers-beyond-layers": (
        lambda m: m.set("llama.nextn_predict_layers", 3, U32),
        "llama.nextn_predict_layers is more than the 2 layers",
    ),
    "expert_used_count-without-experts": (
        lambda m: m.set("llama.expert_used_count", 2, U32),
        "llama.expert_used_count or llama.expert_group_count is set for a model without experts",
    ),
    "expert_group_count-without-experts": (
        lambda m: m.set("llama.expert_group_count", 2, U32),
        "llama.expert_used_count or llama.expert_group_count is set for a model without experts",
    ),
    "expert_used_count-unset": (
        lambda m: m.set("llama.expert_count", 4, U32),
        "llama.expert_used_count is 0; it must be 1 to llama.expert_count (4)",
    ),
    "expert_used_count-5-of-4-in-layer-1": (
        lambda m: m.set("llama.expert_count", 4, U32).set("llama.expert_used_count", [2, 5], ARR, U32),
        "llama.expert_used_count is 5; it must be 1 to llama.expert_count (4)",
    ),
    "expert_group_count-as-many-as-experts": (
        lambda m: (
            m.set("llama.expert_count", 4, U32)
            .set("llama.expert_used_count", 2, U32)
            .set("llama.expert_group_count", 4, U32)
        ),
        "llama.expert_group_count (4) must be less than llama.expert_count (4)",
    ),
    "expert_group_count-does-not-divide-experts": (
        lambda m: (
            m.set("llama.expert_count", 6, U32)
            .set("llama.expert_used_count", 2, U32)
            .set("llama.expert_group_count", 4, U32)
            .set("llama.expert_group_used_count", 1, U32)
        ),
        "llama.expert_group_count (4) does not fit the experts and groups used",
    ),
    "expert_group_used_count-all-groups": (
        lambda m: (
            m.set("llama.expert_count", 8, U32)
            .set("llama.expert_used_count", 2, U32)
            .set("llama.expert_group_count", 4, U32)
            .set("llama.expert_group_used_count", 4, U32)
        ),
        "llama.expert_group_count (4) does not fit the experts and groups used",
    ),
    "head_count-does-not-divide-embedding": (
        lambda m: m.set("llama.attention.head_count", 3, U32),
        "llama.attention.head_count (3) does not divide llama.embedding_length (8)",
    ),
    "head_count_kv-does-not-divide-heads": (
        lambda m: m.set("llama.attention.head_count", 4, U32).set("llama.attention.head_count_kv", 3, U32),
        "llama.attention.head_count_kv (3) does not divide the 4 heads",
    ),
    "head_count_kv-does-not-divide-heads-in-layer-1": (
        lambda m: m.set("llama.attention.head_count", [2, 4], ARR, U32).set(
            "llama.attention.head_count_kv", [1, 3], ARR, U32
        ),
        "llama.attention.head_count_kv (3) does not divide the 4 heads",
    ),
    # llama.cpp makes every layer's tensors and cache from layer 0's counts and splits each layer
    # by its own: both of these aborted a decode (GGML_ASSERT) after loading.
    "head_count_kv-changes-in-layer-1": (
        lambda m: m.set("llama.attention.head_count_kv", [1, 2], ARR, U32),
        "llama.attention.head_count_kv is 2 in layer 1 but 1 in layer 0; a llama model has the same in every layer",
    ),
    "heads-and-kv-change-in-layer-1": (
        lambda m: m.set("llama.attention.head_count", [2, 4], ARR, U32).set(
            "llama.attention.head_count_kv", [1, 2], ARR, I32
        ),
        "llama.attention.head_count_kv is 2 in layer 1 but 1 in layer 0; a llama model has the same in every layer",
    ),
    "head_count_kv-without-heads": (
        lambda m: m.set("llama.attention.head_count", 0, U32),
        "llama.attention.head_count_kv is 1 but there are no attention heads",
    ),
    "rope.dimension_count-larger-than-head": (
        lambda m: m.set("llama.rope.dimension_count", 5, U32),
        "llama.rope.dimension_count is larger than the head size (4)",
    ),
    "rope.dimension_count-odd": (  # ggml's rope asserts an even width (gemma3 aborted at the first token)
        lambda m: TinyModel(architecture="gemma3").set("gemma3.rope.dimension_count", 3, U32),
        "gemma3.rope.dimension_count is 3; rotary embedding turns pairs of dimensions, so it must be even",
    ),
    "rope-narrower-than-the-head": (  # qwen2's graph asserts rope spans the head
        lambda m: TinyModel(architecture="qwen2").set("qwen2.rope.dimension_count", 2, U32),
        "qwen2.rope.dimension_count is 2 but the head size is 4; a qwen2 model turns the whole head",
    ),
    "key-and-value-head-sizes-differ": (
        lambda m: (
            TinyModel(architecture="qwen2")
            .set("qwen2.attention.key_length", 4, U32)
            .set("qwen2.attention.value_length", 2, U32)
        ),
        "qwen2.attention.key_length (4) and value_length (2) differ; a qwen2 model has one head size",
    ),
    "rms_epsilon-negative": (  # ggml's norm kernels assert eps >= 0
        lambda m: m.set("llama.attention.layer_norm_rms_epsilon", -1.0, F32),
        "llama.attention.layer_norm_rms_epsilon is -1.0; it must be at least 0",
    ),
    # The vocabulary.
    "tokenizer-missing": (
        lambda m: m.drop("tokenizer.ggml.model"),
        "tokenizer.ggml.model is missing (the file has no tokenizer)",
    ),
    "tokens-missing": (
        lambda m: m.drop(TOKENS),
        "tokenizer.ggml.tokens is missing (the file has no vocabulary)",
    ),
    "tokens-numbers": (
        lambda m: m.set(TOKENS, [1, 2, 3, 4, 5, 6], ARR, U32),
        "tokenizer.ggml.tokens is an array of uint32, not an array of strings",
    ),
    "tokens-empty": (
        lambda m: m.set(TOKENS, [], ARR, STR),
        "tokenizer.ggml.tokens has 0 tokens",
    ),
    "scores-strings": (
        lambda m: m.set("tokenizer.ggml.scores", ["0"] * 6, ARR, STR),
        "tokenizer.ggml.scores is an array of string, not an array of float32 or int32",
    ),
    "token_type-scalar": (
        lambda m: m.set("tokenizer.ggml.token_type", 1, I32),
        "tokenizer.ggml.token_type is an int32, not an array of int32",
    ),
    "token_type-short": (
        lambda m: m.set("tokenizer.ggml.token_type", [1] * 5, ARR, I32),
        "tokenizer.ggml.token_type has 5 entries for 6 tokens",
    ),
    "merges-numbers": (
        lambda m: m.set("tokenizer.ggml.merges", [1], ARR, I32),
        "tokenizer.ggml.merges is an array of int32, not an array of strings",
    ),
    "tokens-duplicate": (
        lambda m: m.set(TOKENS, ["<s>", "</s>", "a", "b", "a", "c"], ARR, STR),
        "tokenizer.ggml.tokens holds the token 'a' twice",
    ),
    "tokens-equal-up-to-a-zero-byte": (  # llama.cpp reads each token as a C string
        lambda m: m.set(TOKENS, ["<s>", "</s>", "a", "b", "a\0b", "c"], ARR, STR),
        "tokenizer.ggml.tokens holds the token 'a' twice",
    ),
    "eos_token_id-outside-vocabulary": (
        lambda m: m.set("tokenizer.ggml.eos_token_id", 6, U32),
        "tokenizer.ggml.eos_token_id is 6, not one of the 6 tokens",
    ),
    "byte-fallback-without-0x00": (
        lambda m: byte_vocabulary(missing=0x00),
        "tokenizer.ggml.tokens has no token for the byte 0x00; llama.cpp stops the program on text that needs it",
    ),
    "byte-fallback-without-A": (
        lambda m: byte_vocabulary(missing=ord("A")),
        "tokenizer.ggml.tokens has no token for the byte 0x41; llama.cpp stops the program on text that needs it",
    ),
    # Tensors, for an architecture whose shapes llamadesk knows.
    "no-vocabulary": (
        lambda m: m.set("tokenizer.ggml.model", "no_vocab", STR),
        "the file has no vocabulary (tokenizer.ggml.tokens); a llama model needs one",
    ),
    "feed_forward_length-missing": (
        lambda m: m.drop("llama.feed_forward_length"),
        "llama.feed_forward_length is missing or 0; a llama model needs at least 1",
    ),
    "no-attention-heads": (
        lambda m: m.set("llama.attention.head_count", 0, U32).drop("llama.attention.head_count_kv"),
        "llama.attention.head_count is missing or 0; a llama model needs at least 1",
    ),
    "token_embd-missing": (
        lambda m: m.drop("token_embd.weight"),
        "tensor token_embd.weight is missing; a llama model needs it",
    ),
    "tensor-beyond-layers": (
        lambda m: m.tensors.update({"blk.2.attn_norm.weight": tensor(8)}),
        "tensor 'blk.2.attn_norm.weight' is beyond the model's 2 layers (llama.block_count)",
    ),
    "token_embd-wider": (
        lambda m: m.tensors.update({"token_embd.weight": tensor(6, 16)}),
        "tensor 'token_embd.weight' has shape [16, 6] but the hyperparameters say [8, 6]",
    ),
    "ffn_down-transposed": (
        lambda m: m.tensors.update({"blk.0.ffn_down.weight": tensor(16, 8)}),
        "tensor 'blk.0.ffn_down.weight' has shape [8, 16] but the hyperparameters say [16, 8]",
    ),
    "key_length-does-not-match-attn_q": (  # with key_length, heads need not divide the embedding
        lambda m: (
            m.set("llama.attention.head_count", 3, U32)
            .set("llama.attention.key_length", 4, U32)
            .set("llama.attention.value_length", 4, U32)
        ),
        "tensor 'blk.0.attn_q.weight' has shape [8, 8] but the hyperparameters say [8, 12]",
    ),
    "norm-f16": (
        lambda m: m.tensors.update({"output_norm.weight": tensor(8, dtype=np.float16)}),
        "tensor 'output_norm.weight' is F16; a one-dimensional tensor must be F32",
    ),
    "weight-i8": (
        lambda m: m.tensors.update({"blk.0.attn_q.weight": tensor(8, 8, dtype=np.int8)}),
        "tensor 'blk.0.attn_q.weight' is I8, which is not a weight type",
    ),
    "weight-f64": (
        lambda m: m.tensors.update({"blk.0.attn_q.weight": tensor(8, 8, dtype=np.float64)}),
        "tensor 'blk.0.attn_q.weight' is F64, which is not a weight type",
    ),
    # Split models.
    "second-part-of-a-split": (
        lambda m: m.set("split.no", 1, GGUFValueType.UINT16).set("split.count", 2, GGUFValueType.UINT16),
        "it is part 2 of a split model (split.no); give the first part",
    ),
    "split-count-on-a-single-file": (
        lambda m: m.set("split.count", 2, GGUFValueType.UINT16),
        "split.count says 2 parts but the file is not named as the first of them (NAME-00001-of-00002.gguf)",
    ),
}


@pytest.mark.parametrize("change, message", REFUSED.values(), ids=REFUSED.keys())
def test_a_model_llama_cpp_would_abort_on_is_refused_with_one_line(tmp_path, change, message):
    model = TinyModel()
    model = change(model) or model
    path = model.write(tmp_path / "tiny.gguf")
    with pytest.raises(BadInputError) as err:
        inspect_gguf(path)
    assert str(err.value) == f"{path}: {message}; {ADVICE}"


ACCEPTED = {
    "unchanged": lambda m: None,
    # llama.cpp computes with layer 0's head count; only the KV head count sizes each layer's cache.
    "per-layer-head-counts": lambda m: m.set("llama.attention.head_count", [2, 4], ARR, U32).set(
        "llama.attention.head_count_kv", [1, 1], ARR, I32
    ),
    "experts-in-groups": lambda m: (
        m.set("llama.expert_count", 8, U32)
        .set("llama.expert_used_count", 2, U32)
        .set("llama.expert_group_count", 4, U32)
        .set("llama.expert_group_used_count", 2, U32)
    ),
    "rope.scaling.type-yarn": lambda m: m.set("llama.rope.scaling.type", "yarn", STR),
    "add_bos_token-bool": lambda m: m.set("tokenizer.ggml.add_bos_token", True, BOOL),
    # llama.cpp renames each empty token ("[EMPTY_3]"), so two of them are not the same token.
    "two-empty-tokens": lambda m: m.set(TOKENS, ["<s>", "</s>", "", "b", "", "c"], ARR, STR),
    "byte-fallback-with-every-byte": lambda m: byte_vocabulary(),
    "scores-full": lambda m: m.set("tokenizer.ggml.scores", [0.0] * 6, ARR, F32),
    # Names llama.cpp does not create in that place are not its tensors, whatever their shape.
    "tensors-llama.cpp-does-not-create": lambda m: m.tensors.update(
        {"blk.0.output_norm.weight": tensor(3), "rope_freqs.weight": tensor(2), "attn_q.weight": tensor(5, 5)}
    ),
    "weight-f16": lambda m: m.tensors.update({"blk.0.attn_q.weight": tensor(8, 8, dtype=np.float16)}),
}


@pytest.mark.parametrize("change", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_a_model_llama_cpp_can_load_is_accepted(tmp_path, change):
    model = TinyModel()
    model = change(model) or model
    summary = inspect_gguf(model.write(tmp_path / "tiny.gguf"))
    assert summary.architecture == "llama" and summary.n_layers == 2


def test_a_rope_narrower_than_the_head_is_accepted_where_llama_cpp_allows_it(tmp_path):
    """Phi-3's graph turns only the first rope.dimension_count dimensions (Phi-4 mini: 3/4 of them)."""
    model = TinyModel(architecture="phi3").set("phi3.rope.dimension_count", 2, U32)
    assert inspect_gguf(model.write(tmp_path / "tiny.gguf")).architecture == "phi3"


def test_shapes_are_left_to_llama_cpp_for_other_architectures(tmp_path):
    """qwen2's tensors are not listed: a missing feed-forward size, no vocabulary and an odd
    embedding are what llama.cpp itself refuses cleanly, so llamadesk lets it."""
    model = TinyModel("qwen2", tensors={"token_embd.weight": tensor(6, 16)})
    model.drop("qwen2.feed_forward_length").set("tokenizer.ggml.model", "no_vocab", STR)
    summary = inspect_gguf(model.write(tmp_path / "tiny.gguf"))
    assert summary.architecture == "qwen2" and summary.n_embd == 8
    # ... but every key it reads is still checked.
    model.set("qwen2.rope.freq_base", float("-inf"), F32)
    with pytest.raises(BadInputError, match=r"qwen2\.rope\.freq_base is -inf, not a finite number"):
        inspect_gguf(model.write(tmp_path / "tiny.gguf"))


def test_a_split_model_is_checked_with_every_part(tmp_path):
    first = tmp_path / "tiny-00001-of-00002.gguf"
    TinyModel().write(tmp_path / "tiny.gguf", split_max_tensors=4)
    assert first.exists()
    assert inspect_gguf(first).n_layers == 2

    # A tensor in the second part is checked like one in the first; the message names the model.
    TinyModel(tensors={"blk.1.ffn_up.weight": tensor(16, 8, dtype=np.int8)}).write(
        tmp_path / "tiny.gguf", split_max_tensors=4
    )
    with pytest.raises(BadInputError) as err:
        inspect_gguf(first)
    assert str(err.value) == f"{first}: tensor 'blk.1.ffn_up.weight' is I8, which is not a weight type; {ADVICE}"

    (tmp_path / "tiny-00002-of-00002.gguf").unlink()
    with pytest.raises(BadInputError, match="tiny-00002-of-00002.gguf: no such file"):
        inspect_gguf(first)
