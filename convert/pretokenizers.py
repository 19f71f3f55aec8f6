"""Recognise a tokenizer.json pre-tokenizer as one of llama.cpp's named pre-tokenizers.

llama.cpp does not read the pre-tokenizer from the GGUF; it splits text with a built-in regex
chosen by the name in `tokenizer.ggml.pre`. A wrong name tokenizes differently without any error,
so the name is looked up from the pre-tokenizer's exact definition in this table, and anything
not in it is refused (llama.cpp's own converter hashes the output of transformers' tokenizer
instead, which needs transformers).
"""

from __future__ import annotations

import json
from typing import Any

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.value_ranges import shown

LLAMA3_SPLIT = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)

# Qwen2/2.5/3: Llama 3's split, but digits one at a time.
QWEN2_SPLIT = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)

# GPT-4o's o200k split (Phi-4-mini ships it): cased words with their contraction, digits in threes,
# "/" kept with a line end.
GPT4O_SPLIT = (
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
    "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)


# Every name llama.cpp's vocabulary loader accepts in `tokenizer.ggml.pre` (llama-vocab.cpp of the
# llama.cpp that llama-cpp-python 0.3.36 vendors; tests/test_convert_vocabulary.py reads that file and
# checks this list against it). Any other name is a model llama.cpp refuses to load
# ("unknown pre-tokenizer type"), so --pre-tokenizer is checked against it before converting.
LLAMA_CPP_PRE_TOKENIZERS = frozenset(
    """
    a.x-4.0 afmoe bailingmoe bailingmoe2 bloom chameleon chatglm-bpe codeshell
    cohere2moe command-r dbrx deepseek-coder deepseek-llm deepseek-r1-qwen
    deepseek-v3 default exaone exaone-moe exaone4 f2llmv2 falcon falcon-h1
    falcon3 gemma4 gigachat glm4 glm5 gpt-2 gpt-4o gpt3-finnish
    granite-docling granite-embed-multi-311m granite-embed-multi-97m grok-2 hunyuan
    hunyuan-dense hy_v4 jais jais-2 jina-de jina-es jina-v1-en jina-v2-code
    jina-v2-de jina-v2-es jina-v5-nano joyai-llm kanana2 kimi-k2 kormo laguna
    lfm2 llada-moe llama-bpe llama-v3 llama3 llama4 megrez mellum mellum2
    midm-2.0 minerva-7b minicpm5 minimax-m2 modern-bert mpt olmo phi-2 pixtral
    poro-chat qwen2 qwen35 refact roberta-bpe sarvam-moe seed-coder smaug-bpe
    smollm solar-open spark2_5 stablelm2 starcoder superbpe talkie tekken
    tiny_aya trillion ufakzeka viking whitespace youtu
    """.split()
)


def check_pre_tokenizer_name(name: str) -> None:
    """BadInputError unless llama.cpp knows `name` as a pre-tokenizer."""
    if name not in LLAMA_CPP_PRE_TOKENIZERS:
        raise BadInputError(
            f"--pre-tokenizer {shown(name)} is not a pre-tokenizer llama.cpp knows "
            "(llama3, qwen2, smollm, gpt-2, ...); a file written with it would not load"
        )


def _byte_level(use_regex: bool) -> tuple:
    return ("ByteLevel", use_regex, False)


# A pre-tokenizer's signature (see `signature`) -> llama.cpp's name for it.
KNOWN_PRE_TOKENIZERS: dict[tuple, str] = {
    _byte_level(True): "gpt-2",
    ("Sequence", ("Digits", True), _byte_level(True)): "smollm",
    ("Sequence", ("Split", LLAMA3_SPLIT, "Isolated", False), _byte_level(False)): "llama-bpe",
    ("Sequence", ("Split", QWEN2_SPLIT, "Isolated", False), _byte_level(False)): "qwen2",
    ("Sequence", ("Split", GPT4O_SPLIT, "Isolated", False), _byte_level(False)): "gpt-4o",
}


def signature(pre_tokenizer: Any) -> tuple:
    """The parts of a pre-tokenizer definition that change which pieces text is split into.

    Any JSON value is accepted (a damaged file's too): what is not a known definition gets a
    signature no table entry has, so it is reported as unrecognised.
    """
    if not pre_tokenizer:
        return ("None",)
    if not isinstance(pre_tokenizer, dict):
        return ("?", json.dumps(pre_tokenizer)[:200])
    kind = pre_tokenizer.get("type")
    if kind == "Sequence" and isinstance(parts := pre_tokenizer.get("pretokenizers", []), list):
        return ("Sequence", *(signature(p) for p in parts))
    if kind == "ByteLevel":
        return (
            "ByteLevel",
            bool(pre_tokenizer.get("use_regex", True)),
            bool(pre_tokenizer.get("add_prefix_space", False)),
        )
    if kind == "Digits":
        return ("Digits", bool(pre_tokenizer.get("individual_digits", False)))
    if kind == "Split" and isinstance(pattern := pre_tokenizer.get("pattern", {}), dict):
        return (
            "Split",
            pattern.get("Regex", pattern.get("String")),
            pre_tokenizer.get("behavior"),
            bool(pre_tokenizer.get("invert")),
        )
    return (str(kind), json.dumps(pre_tokenizer, sort_keys=True))


def llama_cpp_pre_tokenizer(pre_tokenizer: Any) -> str | None:
    """llama.cpp's name for this pre-tokenizer, or None when it is not one llamadesk knows."""
    try:
        return KNOWN_PRE_TOKENIZERS.get(signature(pre_tokenizer))
    except TypeError:  # a signature holding an unhashable value (a list where a regex belongs)
        return None


def describe(pre_tokenizer: Any) -> str:
    """A short human description, e.g. 'Sequence[Digits, ByteLevel]'."""
    if not pre_tokenizer:
        return "none"
    if not isinstance(pre_tokenizer, dict):
        return type(pre_tokenizer).__name__
    if pre_tokenizer.get("type") == "Sequence" and isinstance(parts := pre_tokenizer.get("pretokenizers"), list):
        return "Sequence[" + ", ".join(describe(p) for p in parts[:10]) + "]"
    kind = pre_tokenizer.get("type")
    return kind if isinstance(kind, str) and kind.isprintable() and len(kind) <= 40 else shown(kind)


def known_names() -> str:
    return ", ".join(sorted(set(KNOWN_PRE_TOKENIZERS.values())))
