"""Check a converted GGUF against its source: same token ids, and logits close to the source's.

Tokens: the source tokenizer is run by its own library (`tokenizers` for tokenizer.json,
`sentencepiece` for tokenizer.model): those are the definitions llama.cpp's tokenizer must match,
so they are the reference. Both install with llamadesk; should one be missing, --verify says how
to install it. Besides sample texts, each added token of a tokenizer.json is checked on its own
(`added_token_texts`). Logits: llama.cpp's on the GGUF against reference_forward's numpy forward
pass over the source checkpoint's own tensors.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gguf
import numpy as np

from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.convert.checkpoint import Checkpoint
from llamadesk.convert.reference_forward import reference_logits

if TYPE_CHECKING:
    from llamadesk.convert.converter import ConversionPlan

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


# Added tokens checked at most (Llama 3 has 256, its reserved ones included); each is one short text.
MAX_ADDED_TOKEN_TEXTS = 512


def added_token_texts(folder: Path, tokenizer_model: str) -> tuple[str, ...]:
    """A text per added token of a tokenizer.json (chat markers, tool tokens), between two words as a
    chat template puts them: the GGUF must split each out as one token, as the source does.

    Their token types decide that in llama.cpp (a special token typed as an ordinary one comes out
    as its pieces), and the plain samples never hold one. Left out: tokens whose match also eats
    the spaces beside them or needs word boundaries (lstrip, rstrip, single_word), rules llama.cpp
    keeps only for a few models of its own; and SentencePiece sources, whose reference library
    does not parse added tokens in text at all.
    """
    if tokenizer_model != "gpt2":
        return ()
    tokenizers = _require("tokenizers", "tokenizers", "tokenizer.json")
    tok = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    added = [token for _, token in sorted(tok.get_added_tokens_decoder().items())]
    plain = [token.content for token in added if not (token.lstrip or token.rstrip or token.single_word)]
    return tuple(f"Hello{content}world" for content in plain[:MAX_ADDED_TOKEN_TEXTS] if content.strip())


def token_mismatches(folder: Path, tokenizer_model: str, gguf_tokenize, texts=SAMPLE_TEXTS) -> list[TokenMismatch]:
    """The sample texts the GGUF (through `gguf_tokenize(text)`) tokenizes unlike the source."""
    reference = source_tokenizer(folder, tokenizer_model)
    mismatches = []
    for text in texts:
        expected, got = list(reference(text)), list(gguf_tokenize(text))
        if expected != got:
            mismatches.append(TokenMismatch(text, expected, got))
    return mismatches


# Largest accepted RMS of (GGUF - source) logits, relative to the spread (std) of the source's
# logits, per output type. Measured on SmolLM2-135M through the engine (f16 KV cache): f32 0.0008,
# f16 0.0013, bf16 0.010, q8_0 0.058; a missing Q/K permutation gives ~1. Relative, because logit
# scales differ between models; RMS, because one near-tied position says little.
RELATIVE_RMS_TOLERANCE: dict[gguf.GGMLQuantizationType, float] = {
    gguf.GGMLQuantizationType.F32: 0.01,
    gguf.GGMLQuantizationType.F16: 0.02,
    gguf.GGMLQuantizationType.BF16: 0.05,
    gguf.GGMLQuantizationType.Q8_0: 0.15,
}
SURE_MARGIN = 4.0
# The context llama.cpp is loaded with to check a file: the sample's 48 tokens fit with room to spare.
VERIFY_CONTEXT = 128  # a greedy choice counts when the source's top two differ by this many RMS errors
LOGITS_SAMPLE = SAMPLE_TEXTS[0]


@dataclass(frozen=True)
class LogitsComparison:
    relative_rms: float  # RMS(GGUF - source) / std(source)
    max_abs_diff: float
    tolerance: float
    top1_disagreements: int  # positions where the GGUF's greedy token differs and the source was sure

    @property
    def ok(self) -> bool:
        return self.relative_rms <= self.tolerance and self.top1_disagreements == 0


def compare_logits(
    checkpoint: Checkpoint,
    tokens: list[int],
    gguf_logits: Callable[[list[int]], np.ndarray],
    outtype: gguf.GGMLQuantizationType,
    n_ctx: int | None = None,
) -> LogitsComparison:
    """Source (numpy reference) against GGUF (llama.cpp) logits at every position of `tokens`.

    A greedy choice only counts as a disagreement where the source's top two logits are further
    apart than SURE_MARGIN times the RMS error (closer than that, rounding may swap them). `n_ctx` is
    the context llama.cpp was loaded with (it picks LongRoPE's factors by it).
    """
    expected, got = reference_logits(checkpoint, tokens, n_ctx), np.asarray(gguf_logits(tokens), dtype=np.float32)
    diff = got - expected
    rms = float(np.sqrt(np.mean(diff.astype(np.float64) ** 2)))
    top2 = np.sort(expected, axis=-1)[:, -2:]
    sure = (top2[:, 1] - top2[:, 0]) > SURE_MARGIN * rms
    disagree = int(np.sum(sure & (expected.argmax(-1) != got.argmax(-1))))
    spread = float(expected.std()) or 1.0
    return LogitsComparison(rms / spread, float(np.abs(diff).max()), RELATIVE_RMS_TOLERANCE[outtype], disagree)


def verify_against_source(
    plan: ConversionPlan,
    file_name: str,
    gguf_tokenize: Callable[[str], list[int]],
    gguf_logits: Callable[[list[int]], np.ndarray],
) -> str:
    """Check a written GGUF (through its tokenizer, which parses special tokens in text as a chat
    template's rendering does, and its logits function) against the plan's source.

    Returns a one-line summary; raises LlamadeskError naming the first difference otherwise.
    """
    folder, model = plan.checkpoint.folder, plan.vocabulary.model
    mismatches = token_mismatches(folder, model, gguf_tokenize, SAMPLE_TEXTS + added_token_texts(folder, model))
    if mismatches:
        first = mismatches[0]
        at = next(
            (i for i, (a, b) in enumerate(zip(first.expected, first.got, strict=False)) if a != b),
            min(len(first.expected), len(first.got)),
        )
        raise LlamadeskError(
            f"verification failed: {file_name} tokenizes {len(mismatches)} sample text(s) differently from the "
            f"source, e.g. {first.text[:40]!r} from token {at}: expected {first.expected[at : at + 6]}, "
            f"got {first.got[at : at + 6]}; "
            "the file was not kept (for a tokenizer.json, a different --pre-tokenizer may fix it)"
        )
    tokens = gguf_tokenize(LOGITS_SAMPLE)[:48]
    logits = compare_logits(plan.checkpoint, tokens, gguf_logits, plan.bulk_type, VERIFY_CONTEXT)
    if not logits.ok:
        raise LlamadeskError(
            f"verification failed: {file_name}'s logits differ from the source checkpoint's by "
            f"{logits.relative_rms:.1%} of their spread (RMS; accepted {logits.tolerance:.0%}), "
            "greedy choice differs at "
            f"{logits.top1_disagreements} clear-cut position(s); the file was not kept"
        )
    return (
        f"tokenizer identical, logits within {logits.relative_rms:.2%} of the source's (RMS/spread; "
        f"max |diff| {logits.max_abs_diff:.2g})"
    )
