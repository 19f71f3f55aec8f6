"""Check a converted GGUF against its source: llama.cpp must tokenize exactly as the source tokenizer.

The source tokenizer is run by its own library (`tokenizers` for tokenizer.json, `sentencepiece`
for tokenizer.model): those are the definitions llama.cpp's tokenizer must match, so they are the
reference. They are not llamadesk dependencies; --verify says how to install the one it needs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from ..app.errors import BadInputError

# English, French, German, Chinese, Japanese, Russian, Arabic, code, numbers, emoji, odd spacing.
SAMPLE_TEXTS = (
    "The quick brown fox jumps over the lazy dog. It's 3:45 pm; we've won 1,234,567 games!",
    "Où est la bibliothèque ? L'été dernier, nous étions à Besançon.",
    "Größere Übungen schaffen Äpfel für 12 Straßen.",
    "我们今天去北京天安门广场参观。这是一个测试句子。",
    "日本語のテキストも少し入れておきます。カタカナとひらがな。",
    "Привет, мир! Как дела?",
    "مرحبا بالعالم",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\n\tprint(fib(10))  # 55",
    "Emoji: 🙂🚀👩‍💻 and symbols ∑∫√ ≠ ≤ ≥ «quotes» — dash",
    "   leading spaces, trailing spaces   \n\nnew lines\r\n",
)


@dataclass(frozen=True)
class TokenMismatch:
    text: str
    expected: list[int]
    got: list[int]


def _require(module: str, package: str, why: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise BadInputError(
            f"--verify runs the source tokenizer ({why}) with the `{package}` package, which is not installed; "
            f"install it (pip install {package}) or convert without --verify"
        ) from None


def source_tokenizer(folder: Path, tokenizer_model: str):
    """A function text -> ids that runs the source's own tokenizer with its special tokens."""
    if tokenizer_model == "gpt2":
        tokenizers = _require("tokenizers", "tokenizers", "tokenizer.json")
        tok = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        return lambda text: tok.encode(text, add_special_tokens=True).ids
    spm = _require("sentencepiece", "sentencepiece", "tokenizer.model")
    processor = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    bos = processor.bos_id()
    return lambda text: ([bos] if bos >= 0 else []) + processor.encode(text)


def token_mismatches(folder: Path, tokenizer_model: str, gguf_tokenize, texts=SAMPLE_TEXTS) -> list[TokenMismatch]:
    """The sample texts the GGUF (through `gguf_tokenize(text)`) tokenizes unlike the source."""
    reference = source_tokenizer(folder, tokenizer_model)
    mismatches = []
    for text in texts:
        expected, got = list(reference(text)), list(gguf_tokenize(text))
        if expected != got:
            mismatches.append(TokenMismatch(text, expected, got))
    return mismatches
