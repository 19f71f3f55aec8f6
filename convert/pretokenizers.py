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

LLAMA3_SPLIT = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)


def _byte_level(use_regex: bool) -> tuple:
    return ("ByteLevel", use_regex, False)


# A pre-tokenizer's signature (see `signature`) -> llama.cpp's name for it.
KNOWN_PRE_TOKENIZERS: dict[tuple, str] = {
    _byte_level(True): "gpt-2",
    ("Sequence", ("Digits", True), _byte_level(True)): "smollm",
    ("Sequence", ("Split", LLAMA3_SPLIT, "Isolated", False), _byte_level(False)): "llama-bpe",
}


def signature(pre_tokenizer: dict[str, Any] | None) -> tuple:
    """The parts of a pre-tokenizer definition that change which pieces text is split into."""
    if not pre_tokenizer:
        return ("None",)
    kind = pre_tokenizer.get("type")
    if kind == "Sequence":
        return ("Sequence", *(signature(p) for p in pre_tokenizer.get("pretokenizers", [])))
    if kind == "ByteLevel":
        return (
            "ByteLevel",
            bool(pre_tokenizer.get("use_regex", True)),
            bool(pre_tokenizer.get("add_prefix_space", False)),
        )
    if kind == "Digits":
        return ("Digits", bool(pre_tokenizer.get("individual_digits", False)))
    if kind == "Split":
        pattern = pre_tokenizer.get("pattern", {})
        return (
            "Split",
            pattern.get("Regex", pattern.get("String")),
            pre_tokenizer.get("behavior"),
            bool(pre_tokenizer.get("invert")),
        )
    return (str(kind), json.dumps(pre_tokenizer, sort_keys=True))


def llama_cpp_pre_tokenizer(pre_tokenizer: dict[str, Any] | None) -> str | None:
    """llama.cpp's name for this pre-tokenizer, or None when it is not one llamadesk knows."""
    return KNOWN_PRE_TOKENIZERS.get(signature(pre_tokenizer))


def describe(pre_tokenizer: dict[str, Any] | None) -> str:
    """A short human description, e.g. 'Sequence[Digits, ByteLevel]'."""
    if not pre_tokenizer:
        return "none"
    if pre_tokenizer.get("type") == "Sequence":
        return "Sequence[" + ", ".join(describe(p) for p in pre_tokenizer.get("pretokenizers", [])) + "]"
    return str(pre_tokenizer.get("type"))


def known_names() -> str:
    return ", ".join(sorted(set(KNOWN_PRE_TOKENIZERS.values())))
