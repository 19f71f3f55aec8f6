"""What a model GGUF must satisfy before llama.cpp may load it.

llama.cpp checks a GGUF's structure carefully (gguf_header mirrors those checks), but it trusts a
model's hyperparameters: `block_count = 0`, a head count that does not divide the embedding, an
embedding length that is not a whole number of quantization blocks, a vocabulary with the same
token twice, or a `rope.scaling.type` it does not know end in an abort (GGML_ASSERT) that takes
the whole process down, and a context length of 2^32-1 makes llamadesk itself ask for more
memory than exists. So every value llama.cpp reads is checked here first, for its GGUF type
(llama.cpp reads each key as one exact type) and its range, and, for the architectures whose
tensor shapes are listed below, every tensor's shape against the hyperparameters.

What llama.cpp refuses cleanly (an unknown architecture, tokenizer or pre-tokenizer, a missing
tensor of an architecture not listed here) is left to it: `info` asks llama.cpp's own loader
without loading weights, and Engine.load reports its refusal as bad input.

The tables are the knowledge (keys, types, ranges, shape formulas); the functions only apply them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from gguf.constants import GGMLQuantizationType, GGUFValueType

from llamadesk.app.core.gguf_header import GGUFFormatError, GGUFHeader, StringArray, TensorInfo, ValueType, shown

U16, U32, I32, F32, BOOL, STR = (
    GGUFValueType.UINT16,
    GGUFValueType.UINT32,
    GGUFValueType.INT32,
    GGUFValueType.FLOAT32,
    GGUFValueType.BOOL,
    GGUFValueType.STRING,
)
ARRAY = GGUFValueType.ARRAY
INTEGER_TYPES = frozenset(
    {
        GGUFValueType.UINT8,
        GGUFValueType.INT8,
        GGUFValueType.UINT16,
        GGUFValueType.INT16,
        GGUFValueType.UINT32,
        GGUFValueType.INT32,
        GGUFValueType.UINT64,
        GGUFValueType.INT64,
    }
)

# llama.cpp's limits (src/llama-hparams.h) and what llamadesk can plan memory for.
MAX_LAYERS = 512
MAX_EXPERTS = 1024
MAX_CONTEXT = 2**24  # 16M tokens: above every published model; 2^32-1 is a damaged value
MAX_WIDTH = 2**20  # embedding, feed-forward and head sizes
MAX_HEADS = 2**16
MAX_VOCAB = 2**31 - 1  # token ids are int32


class ModelRequirementError(GGUFFormatError):
    """The file is a well-formed GGUF, but not a model llama.cpp can safely load; says which key."""


@dataclass(frozen=True)
class KeyRule:
    """How llama.cpp reads one metadata key: the GGUF types it accepts and the values that work.

    `per_layer`: llama.cpp also takes an array with one value per layer (get_key_or_arr).
    """

    types: tuple[GGUFValueType, ...]
    low: float | None = None
    high: float | None = None
    per_layer: bool = False
    choices: tuple[str, ...] = ()


# Keys under the architecture's prefix ("llama.context_length"), as llama.cpp reads them
# (src/llama-model.cpp load_hparams: get_key<uint32_t>, get_key<float>, get_key_or_arr).
ARCH_KEYS: dict[str, KeyRule] = {
    "context_length": KeyRule((U32,), 1, MAX_CONTEXT),
    "embedding_length": KeyRule((U32,), 1, MAX_WIDTH),
    "block_count": KeyRule((U32,), 1, MAX_LAYERS),
    "feed_forward_length": KeyRule((U32,), 0, MAX_WIDTH, per_layer=True),
    "attention.head_count": KeyRule((U32,), 0, MAX_HEADS, per_layer=True),
    "attention.head_count_kv": KeyRule((U32,), 0, MAX_HEADS, per_layer=True),
    "attention.key_length": KeyRule((U32,), 1, MAX_WIDTH),
    "attention.value_length": KeyRule((U32,), 1, MAX_WIDTH),
    # ggml's norm kernels assert eps >= 0 (an abort at the first token)
    "attention.layer_norm_rms_epsilon": KeyRule((F32,), 0),
    "attention.layer_norm_epsilon": KeyRule((F32,), 0),
    "attention.sliding_window": KeyRule((U32,)),
    "attention.causal": KeyRule((BOOL,)),
    "rope.dimension_count": KeyRule((U32,), 0, MAX_WIDTH),
    "rope.freq_base": KeyRule((F32,)),
    "rope.scaling.type": KeyRule((STR,), choices=("none", "linear", "yarn", "longrope")),
    "rope.scaling.factor": KeyRule((F32,)),
    "rope.scaling.attn_factor": KeyRule((F32,)),
    "rope.scaling.original_context_length": KeyRule((U32,), 0, MAX_CONTEXT),
    "rope.scaling.finetuned": KeyRule((BOOL,)),
    "expert_count": KeyRule((U32,), 0, MAX_EXPERTS),
    "expert_used_count": KeyRule((U32,), 0, MAX_EXPERTS, per_layer=True),
    "expert_group_count": KeyRule((U32,), 0, MAX_EXPERTS),
    "expert_group_used_count": KeyRule((U32,), 0, MAX_EXPERTS),
    "nextn_predict_layers": KeyRule((U32,), 0, MAX_LAYERS),
    "vocab_size": KeyRule((U32,)),  # only names the model's size in llama.cpp's log
    "pooling_type": KeyRule((U32,)),
}
REQUIRED_ARCH_KEYS = ("context_length", "embedding_length", "block_count")

# Keys every architecture shares (src/llama-model-loader.cpp, src/llama-vocab.cpp).
GENERAL_KEYS: dict[str, KeyRule] = {
    "general.architecture": KeyRule((STR,)),
    "general.name": KeyRule((STR,)),
    "general.file_type": KeyRule((U32,)),
    "general.quantization_version": KeyRule((U32,)),
    "split.count": KeyRule((U16,), 1, 2**16 - 1),
    "split.no": KeyRule((U16,)),
    "split.tensors.count": KeyRule((I32,), 0),
    "tokenizer.ggml.model": KeyRule((STR,)),
    "tokenizer.ggml.pre": KeyRule((STR,)),
    "tokenizer.chat_template": KeyRule((STR,)),
    "tokenizer.ggml.add_bos_token": KeyRule((BOOL,)),
    "tokenizer.ggml.add_eos_token": KeyRule((BOOL,)),
    "tokenizer.ggml.add_sep_token": KeyRule((BOOL,)),
    "tokenizer.ggml.add_space_prefix": KeyRule((BOOL,)),
    "tokenizer.ggml.remove_extra_whitespaces": KeyRule((BOOL,)),
}
# Special tokens: llama.cpp reads each as a uint32; one outside the vocabulary is a damaged file
# (llama.cpp falls back to a default, and aborts on the first prompt if that default is missing).
SPECIAL_TOKEN_KEYS = tuple(
    f"tokenizer.ggml.{name}_token_id"
    for name in (
        "bos",
        "eos",
        "eot",
        "eom",
        "unknown",
        "seperator",
        "padding",
        "mask",
        "cls",
        "fim_pre",
        "fim_suf",
        "fim_mid",
        "fim_pad",
        "fim_rep",
        "fim_sep",
        "prefix",
        "suffix",
        "middle",
    )
)
NO_VOCABULARY = ("no_vocab", "none")
BPE_TOKENIZERS = ("gpt2", "hybriddna", "whitespace", "gemma4")  # these need tokenizer.ggml.merges
# SentencePiece vocabularies: text without a token is split into byte tokens ("<0x0A>"), and
# llama.cpp throws through its C API (an abort) when one is missing (llama_vocab::byte_to_token).
BYTE_FALLBACK_TOKENIZERS = ("llama",)

# Architectures whose tensors llama.cpp creates with these shapes (src/models/<arch>.cpp), from the
# hyperparameters of layer 0: E embedding, V vocabulary, H and Hkv heads, Dk and Dv head sizes,
# F feed-forward, X experts. A tensor whose shape differs is refused by llama.cpp, but only after
# it builds the expected one, which aborts if a dimension is 0 or not a whole number of blocks.
SHAPES: dict[str, Callable[[dict[str, int]], tuple[int, ...]]] = {
    "token_embd.weight": lambda p: (p["E"], p["V"]),
    "output.weight": lambda p: (p["E"], p["V"]),
    "output_norm.weight": lambda p: (p["E"],),
    "attn_norm.weight": lambda p: (p["E"],),
    "attn_q.weight": lambda p: (p["E"], p["Dk"] * p["H"]),
    "attn_k.weight": lambda p: (p["E"], p["Dk"] * p["Hkv"]),
    "attn_v.weight": lambda p: (p["E"], p["Dv"] * p["Hkv"]),
    "attn_output.weight": lambda p: (p["Dk"] * p["H"], p["E"]),
    "attn_q_norm.weight": lambda p: (p["Dk"],),
    "attn_k_norm.weight": lambda p: (p["Dk"],),
    "post_attention_norm.weight": lambda p: (p["E"],),
    "ffn_norm.weight": lambda p: (p["E"],),
    "ffn_gate.weight": lambda p: (p["E"], p["F"]),
    "ffn_up.weight": lambda p: (p["E"], p["F"]),
    "ffn_down.weight": lambda p: (p["F"], p["E"]),
    "post_ffw_norm.weight": lambda p: (p["E"],),
    "ffn_gate_inp.weight": lambda p: (p["E"], p["X"]),
    "ffn_gate_exps.weight": lambda p: (p["E"], p["F"], p["X"]),
    "ffn_up_exps.weight": lambda p: (p["E"], p["F"], p["X"]),
    "ffn_down_exps.weight": lambda p: (p["F"], p["E"], p["X"]),
}
# F32 only: norms and biases go through ggml's element-wise ops, which abort on an I32 operand
# (SIGABRT and a gdb backtrace at the first token, after info had called the file fine).
VECTOR_TYPES = frozenset({GGMLQuantizationType.F32})
NOT_WEIGHT_TYPES = frozenset(
    {
        GGMLQuantizationType.Q8_1,
        GGMLQuantizationType.Q8_K,
        GGMLQuantizationType.I8,
        GGMLQuantizationType.I16,
        GGMLQuantizationType.I32,
        GGMLQuantizationType.I64,
        GGMLQuantizationType.F64,
    }
)
OUTSIDE_LAYERS = frozenset({"token_embd.weight", "output.weight", "output_norm.weight"})  # no "blk.N." prefix
SHAPED_ARCHITECTURES = frozenset({"llama", "mistral3", "smollm3", "granite", "gemma3"})
# Architectures whose graph asserts that rotary embedding spans the whole head and that keys and
# values have one head size (GGML_ASSERT(n_embd_head == n_rot) and == n_embd_head_k in
# src/models/<arch>.cpp, read for llama.cpp 0.3.36): another rope.dimension_count or key_length
# loads, then aborts the process at the first token.
ROPE_SPANS_HEAD_ARCHITECTURES = frozenset(
    {
        "apertus", "arcee", "arctic", "baichuan", "chameleon", "codeshell", "cogvlm", "cohere2moe", "dbrx",
        "deci", "deepseek", "dots1", "dream", "exaone", "falcon", "granite", "grok", "grovemoe", "hunyuan-moe",
        "internlm2", "jais2", "llada", "llada-moe", "llama", "llama4", "maincoder", "mellum", "minimax-01",
        "minimax-m2", "minimax-m3", "mistral3", "nemotron", "olmo", "olmo2", "olmoe", "orion", "paddleocr",
        "plamo", "qwen2", "qwen2moe", "qwen2vl", "qwen3", "qwen3moe", "qwen3vl", "qwen3vlmoe", "rnd1",
        "smallthinker", "smollm3", "starcoder2", "xverse",
    }
)  # fmt: skip
LAYER_TENSOR = re.compile(r"^blk\.(?P<layer>\d+)\.(?P<kind>.+)$")

ADVICE = "the file is damaged or not a model llamadesk can run"


def _check_type(key: str, rule: KeyRule, vtype: ValueType) -> None:
    if vtype.kind in rule.types:
        return
    if rule.per_layer and vtype.kind == ARRAY and vtype.item in (U32, I32, BOOL):
        return
    wanted = " or ".join(t.name.lower() for t in rule.types)
    if rule.per_layer:
        wanted += " (or an array of one per layer)"
    raise ModelRequirementError(f"{key} is {vtype.with_article}, not a {wanted}")


def _check_value(key: str, rule: KeyRule, value: Any, n_layers: int | None) -> None:
    if isinstance(value, np.ndarray):
        if n_layers is not None and len(value) != n_layers:
            raise ModelRequirementError(f"{key} has {len(value)} per-layer values for {n_layers} layers")
        values = [int(v) for v in value]  # int32 arrays: llama.cpp reads them as uint32
        values = [v + 2**32 if v < 0 else v for v in values]
    elif isinstance(value, str):
        if rule.choices and value not in rule.choices:
            raise ModelRequirementError(f"{key} is {shown(value)}, not one of {', '.join(rule.choices)}")
        return
    elif isinstance(value, float) and not np.isfinite(value):
        raise ModelRequirementError(f"{key} is {value}, not a finite number")
    else:
        values = [value]
    for v in values:
        if (rule.low is not None and v < rule.low) or (rule.high is not None and v > rule.high):
            raise ModelRequirementError(f"{key} is {v}; it must be {describe_range(rule)}")


def describe_range(rule: KeyRule) -> str:
    if rule.high is None:
        return f"at least {rule.low:,g}"
    return f"{rule.low:,g} to {rule.high:,.0f}"


def check_keys(header: GGUFHeader, architecture: str) -> None:
    """Every key llama.cpp reads has the type it reads it as and a value in range."""
    meta, types = header.metadata, header.value_types
    for suffix in REQUIRED_ARCH_KEYS:
        if f"{architecture}.{suffix}" not in meta:
            raise ModelRequirementError(f"{architecture}.{suffix} is missing")
    n_layers = int(meta[f"{architecture}.block_count"]) if types[f"{architecture}.block_count"].kind == U32 else None
    rules = {**GENERAL_KEYS, **{f"{architecture}.{suffix}": rule for suffix, rule in ARCH_KEYS.items()}}
    for key, rule in rules.items():
        if key in meta:
            _check_type(key, rule, types[key])
            _check_value(key, rule, meta[key], n_layers if rule.per_layer else None)
    for key in SPECIAL_TOKEN_KEYS:
        if key in meta:
            _check_type(key, KeyRule((U32,)), types[key])


def layer_value(meta: dict[str, Any], key: str, default: int, layer: int = 0) -> int:
    """A (possibly per-layer) integer hyperparameter as llama.cpp reads it for one layer."""
    value = meta.get(key)
    if value is None:
        return default
    if isinstance(value, np.ndarray):
        return int(value[layer]) % 2**32 if len(value) > layer else default
    return int(value)


def check_hyperparameters(header: GGUFHeader, architecture: str) -> dict[str, int]:
    """The asserts in llama.cpp's load_hparams, and the divisibility the attention needs.

    Returns layer 0's sizes by the letters SHAPES uses (the vocabulary is added later).
    """
    meta = header.metadata

    def key(suffix: str) -> str:
        return f"{architecture}.{suffix}"

    n_layers = int(meta[key("block_count")])
    if layer_value(meta, key("nextn_predict_layers"), 0) > n_layers:
        raise ModelRequirementError(f"{key('nextn_predict_layers')} is more than the {n_layers} layers")
    n_expert = layer_value(meta, key("expert_count"), 0)
    used = max(layer_value(meta, key("expert_used_count"), 0, il) for il in range(n_layers))
    groups = layer_value(meta, key("expert_group_count"), 0)
    groups_used = layer_value(meta, key("expert_group_used_count"), 0)
    if n_expert == 0 and (used or groups):
        raise ModelRequirementError(
            f"{key('expert_used_count')} or {key('expert_group_count')} is set for a model without experts"
        )
    if n_expert and not 0 < used <= n_expert:
        raise ModelRequirementError(
            f"{key('expert_used_count')} is {used}; it must be 1 to {key('expert_count')} ({n_expert})"
        )
    if n_expert and groups >= n_expert:
        raise ModelRequirementError(
            f"{key('expert_group_count')} ({groups}) must be less than {key('expert_count')} ({n_expert})"
        )
    if groups > 1 and (n_expert % groups or not 0 < groups_used < groups):
        raise ModelRequirementError(f"{key('expert_group_count')} ({groups}) does not fit the experts and groups used")

    n_embd = int(meta[key("embedding_length")])
    sizes = {"E": n_embd, "X": n_expert}
    for il in range(n_layers):
        n_head = layer_value(meta, key("attention.head_count"), 0, il)
        n_head_kv = layer_value(meta, key("attention.head_count_kv"), n_head, il)
        if n_head and key("attention.key_length") not in meta and n_embd % n_head:
            raise ModelRequirementError(
                f"{key('attention.head_count')} ({n_head}) does not divide {key('embedding_length')} ({n_embd})"
            )
        if n_head and n_head_kv and n_head % n_head_kv:
            raise ModelRequirementError(
                f"{key('attention.head_count_kv')} ({n_head_kv}) does not divide the {n_head} heads"
            )
        if n_head_kv and not n_head:
            raise ModelRequirementError(
                f"{key('attention.head_count_kv')} is {n_head_kv} but there are no attention heads"
            )
        if il and architecture in SHAPED_ARCHITECTURES and n_head_kv != sizes["Hkv"]:
            # These graphs make every layer's tensors and compute with layer 0's head counts, but
            # size each layer's KV cache by its own KV head count: one that changes aborts
            # llama.cpp mid-decode (GGML_ASSERT). A changing head_count alone is ignored there.
            raise ModelRequirementError(
                f"{key('attention.head_count_kv')} is {n_head_kv} in layer {il} but {sizes['Hkv']} in layer 0; "
                f"a {architecture} model has the same in every layer"
            )
        if il == 0:
            head_k = layer_value(meta, key("attention.key_length"), n_embd // n_head if n_head else 0)
            head_v = layer_value(meta, key("attention.value_length"), n_embd // n_head if n_head else 0)
            sizes.update(
                H=n_head, Hkv=n_head_kv, Dk=head_k, Dv=head_v, F=layer_value(meta, key("feed_forward_length"), 0)
            )
    check_rope(meta, architecture, sizes)
    return sizes


def check_rope(meta: dict[str, Any], architecture: str, sizes: dict[str, int]) -> None:
    """The rotary embedding's width against the head sizes, as ggml's rope and the graphs assert."""
    rope_key = f"{architecture}.rope.dimension_count"
    n_rot = layer_value(meta, rope_key, sizes["Dk"])
    if sizes["H"] and n_rot > sizes["Dk"]:
        raise ModelRequirementError(f"{rope_key} is larger than the head size ({sizes['Dk']})")
    if rope_key in meta and n_rot % 2:
        raise ModelRequirementError(
            f"{rope_key} is {n_rot}; rotary embedding turns pairs of dimensions, so it must be even"
        )
    if architecture in ROPE_SPANS_HEAD_ARCHITECTURES and sizes["H"]:
        if sizes["Dk"] != sizes["Dv"]:
            raise ModelRequirementError(
                f"{architecture}.attention.key_length ({sizes['Dk']}) and value_length ({sizes['Dv']}) differ; "
                f"a {architecture} model has one head size"
            )
        if n_rot != sizes["Dk"]:
            raise ModelRequirementError(
                f"{rope_key} is {n_rot} but the head size is {sizes['Dk']}; a {architecture} model turns the whole head"
            )


def check_vocabulary(header: GGUFHeader) -> int:
    """The tokenizer arrays llama.cpp reads; returns the number of tokens.

    Two equal tokens abort llama.cpp (its id-to-token and token-to-id maps must be the same size).
    """
    meta, types = header.metadata, header.value_types
    model = meta.get("tokenizer.ggml.model")
    if model is None:
        raise ModelRequirementError("tokenizer.ggml.model is missing (the file has no tokenizer)")
    if model in NO_VOCABULARY:
        return 0
    tokens = meta.get("tokenizer.ggml.tokens")
    if tokens is None:
        raise ModelRequirementError("tokenizer.ggml.tokens is missing (the file has no vocabulary)")
    if not isinstance(tokens, StringArray):
        raise ModelRequirementError(
            f"tokenizer.ggml.tokens is {types['tokenizer.ggml.tokens'].with_article}, not an array of strings"
        )
    n_tokens = len(tokens)
    if not 1 <= n_tokens <= MAX_VOCAB:
        raise ModelRequirementError(f"tokenizer.ggml.tokens has {n_tokens} tokens")
    for key, item_types in (("tokenizer.ggml.scores", (F32, I32)), ("tokenizer.ggml.token_type", (I32,))):
        if key in meta:
            vtype = types[key]
            if vtype.kind != ARRAY or vtype.item not in item_types:
                wanted = " or ".join(t.name.lower() for t in item_types)
                raise ModelRequirementError(f"{key} is {vtype.with_article}, not an array of {wanted}")
            if len(meta[key]) < n_tokens:
                raise ModelRequirementError(f"{key} has {len(meta[key])} entries for {n_tokens} tokens")
    if model in BPE_TOKENIZERS and "tokenizer.ggml.merges" in meta:
        vtype = types["tokenizer.ggml.merges"]
        if vtype != ValueType(ARRAY, STR):
            raise ModelRequirementError(f"tokenizer.ggml.merges is {vtype.with_article}, not an array of strings")
    texts = llama_cpp_token_texts(tokens.raw())
    vocabulary = set(texts)
    if len(vocabulary) != n_tokens:
        twice, _, _ = duplicate_token(texts) or (b"", 0, 0)
        raise ModelRequirementError(f"tokenizer.ggml.tokens holds the token {shown(twice)} twice")
    byte = missing_byte_token(vocabulary) if model in BYTE_FALLBACK_TOKENIZERS else None
    if byte is not None:
        raise ModelRequirementError(
            f"tokenizer.ggml.tokens has no token for the byte 0x{byte:02X}; llama.cpp stops the program "
            "on text that needs it"
        )
    for key in SPECIAL_TOKEN_KEYS:
        if key in meta and int(meta[key]) >= n_tokens:
            raise ModelRequirementError(f"{key} is {int(meta[key])}, not one of the {n_tokens} tokens")
    return n_tokens


def llama_cpp_token_texts(texts: list[bytes]) -> list[bytes]:
    """The tokens as llama.cpp reads them: each a C string (up to its first zero byte), an empty
    one renamed [EMPTY_i]. `convert` checks its token list with these too."""
    if all(texts) and b"\0" not in b"".join(texts):  # the common case, checked in C
        return texts
    return [text.partition(b"\0")[0] or f"[EMPTY_{i}]".encode() for i, text in enumerate(texts)]


def duplicate_token(texts: list[bytes]) -> tuple[bytes, int, int] | None:
    """The first token that appears twice and both its ids; llama.cpp aborts on such a vocabulary."""
    first: dict[bytes, int] = {}
    for token_id, text in enumerate(texts):
        if first.setdefault(text, token_id) != token_id:
            return text, first[text], token_id
    return None


def missing_byte_token(vocabulary: set[bytes]) -> int | None:
    """A byte with no token (<0xNN> or the byte itself) in a byte-fallback vocabulary, if any:
    llama.cpp stops the program on text that needs it."""
    for byte in range(256):
        if f"<0x{byte:02X}>".encode() not in vocabulary and bytes([byte]) not in vocabulary:
            return byte
    return None


def check_tensor_shapes(architecture: str, sizes: dict[str, int], n_layers: int, tensors: list[TensorInfo]) -> None:
    """For the listed architectures: each tensor llama.cpp creates has the shape it will expect."""
    if architecture not in SHAPED_ARCHITECTURES:
        return
    needed = (("H", "attention.head_count"), ("Hkv", "attention.head_count_kv"), ("F", "feed_forward_length"))
    for letter, suffix in needed:
        if sizes[letter] < 1:
            raise ModelRequirementError(
                f"{architecture}.{suffix} is missing or 0; a {architecture} model needs at least 1"
            )
    if sizes["V"] < 1:
        raise ModelRequirementError(
            f"the file has no vocabulary (tokenizer.ggml.tokens); a {architecture} model needs one"
        )
    names = {t.name for t in tensors}
    if "token_embd.weight" not in names:
        raise ModelRequirementError(f"tensor token_embd.weight is missing; a {architecture} model needs it")
    for tensor in tensors:
        layer = LAYER_TENSOR.match(tensor.name)
        kind = layer["kind"] if layer else tensor.name
        if layer and int(layer["layer"]) >= n_layers:
            raise ModelRequirementError(
                f"tensor {shown(tensor.name)} is beyond the model's {n_layers} layers ({architecture}.block_count)"
            )
        expected = SHAPES.get(kind)
        if expected is None or (kind in OUTSIDE_LAYERS) == (layer is not None):
            continue  # not a tensor llama.cpp creates under this name
        if tuple(tensor.shape) != expected(sizes):
            raise ModelRequirementError(
                f"tensor {shown(tensor.name)} has shape {list(tensor.shape)} but the hyperparameters say "
                f"{list(expected(sizes))}"
            )


def check_tensor_types(tensors: list[TensorInfo]) -> None:
    """Types llama.cpp can compute with: norms and biases (one dimension) are added and multiplied
    element-wise, which ggml's CPU code does in f32 only (it aborts on an f16 norm at the first
    token); weights are multiplied by matrix, which no integer or activation-only type supports.
    Every GGUF writer keeps one-dimensional tensors in f32 for this reason."""
    for tensor in tensors:
        if len(tensor.shape) == 1 and tensor.ggml_type not in VECTOR_TYPES:
            raise ModelRequirementError(
                f"tensor {shown(tensor.name)} is {tensor.ggml_type.name}; a one-dimensional tensor must be F32"
            )
        if len(tensor.shape) > 1 and tensor.ggml_type in NOT_WEIGHT_TYPES:
            raise ModelRequirementError(
                f"tensor {shown(tensor.name)} is {tensor.ggml_type.name}, which is not a weight type"
            )


def check_split(header: GGUFHeader) -> int:
    """How many files the model is split into (1 if not split); the first must be given."""
    count = int(header.metadata.get("split.count", 1))
    index = int(header.metadata.get("split.no", 0))
    if count > 1 and index != 0:
        raise ModelRequirementError(f"it is part {index + 1} of a split model (split.no); give the first part")
    return count


def check_loadable(header: GGUFHeader, architecture: str, other_parts: list[GGUFHeader]) -> None:
    """Everything above, for a model whose first file is `header` (and the rest of a split model)."""
    check_keys(header, architecture)
    sizes = check_hyperparameters(header, architecture)
    sizes["V"] = check_vocabulary(header)
    tensors = header.tensors + [t for part in other_parts for t in part.tensors]
    check_tensor_types(tensors)
    check_tensor_shapes(architecture, sizes, int(header.metadata[f"{architecture}.block_count"]), tensors)
