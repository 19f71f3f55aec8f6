"""`llamadesk eval`: perplexity as llama-perplexity computes it, and KL divergence to a base model.

The procedure is llama-perplexity's (tools/perplexity/perplexity.cpp), so the numbers compare:
the text is tokenized once (BOS first when the model's tokenizer adds one), cut into
non-overlapping chunks of `ctx` tokens (a remainder shorter than a chunk is dropped), each chunk
is evaluated from an empty cache with its first token replaced by BOS when the model uses one,
and only the second half of each chunk is scored, so every scored token has at least ctx/2 tokens
of context. Position j's logits predict token j+1, so a chunk scores ctx - ctx/2 - 1 tokens.

With a base model (the f16 original), both models see the same chunks and every scored position
adds KL(base || model) and whether both rank the same token first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llamadesk.app.core.atomic_file import UnwritableFolder, atomic_output, check_writable_target
from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.gguf_file import GGUFSummary, inspect_gguf
from llamadesk.app.core.json_file import read_json_object
from llamadesk.app.core.paths import other_apps_store
from llamadesk.quantize import quality_metrics as qm

if TYPE_CHECKING:  # the engine (llama.cpp) loads only when a model is scored
    from llamadesk.app.engine.stop_flag import StopFlag

EVAL_SUFFIX = ".eval.json"
# A chunk's second half is scored, less its last position (which predicts nothing): below 4 tokens
# that leaves nothing to score.
SHORTEST_CHUNK = 4
ChunkProgress = Callable[[int, int], None]  # (chunks done, chunks in all)
# Rows reduced at once: 16 x 262,144 float64 is 32 MiB per temporary for gemma3's vocabulary.
ROW_BLOCK = 16


@dataclass(frozen=True)
class EvalResult:
    """Quality of one model on one text; the KL fields are None without a base model."""

    model: str
    text: str
    text_sha256: str
    ctx: int
    chunks: int
    scored_tokens: int
    cross_entropy: float  # mean -log p(next token), in nats: the loss the model was trained on
    perplexity: float  # exp(cross_entropy)
    base: str | None = None
    base_perplexity: float | None = None
    kld_mean: float | None = None
    kld_p99: float | None = None
    kld_max: float | None = None
    top1_agreement: float | None = None  # fraction of positions where both models rank the same token first

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def chunk_starts(n_tokens: int, ctx: int) -> list[int]:
    """Where each non-overlapping chunk begins; refuses a text shorter than two chunks."""
    if ctx < SHORTEST_CHUNK:
        raise BadInputError(f"--ctx must be at least {SHORTEST_CHUNK} tokens, not {ctx}")
    if n_tokens < 2 * ctx:
        raise BadInputError(
            f"the text is {n_tokens} tokens but perplexity at --ctx {ctx} needs at least {2 * ctx} "
            "(two chunks); use a longer text or a smaller --ctx"
        )
    return [i * ctx for i in range(n_tokens // ctx)]


def chunk_tokens(tokens: list[int], start: int, ctx: int, bos: int | None) -> list[int]:
    """The tokens one chunk is evaluated on: BOS replaces its first token when the model uses BOS."""
    chunk = tokens[start : start + ctx]
    if bos is not None:
        chunk = [bos, *chunk[1:]]
    return chunk


def scored_span(ctx: int) -> slice:
    """Positions whose logits are scored: the second half, minus the last (it predicts nothing)."""
    return slice(ctx // 2, ctx - 1)


DEFAULT_CHUNK = 512  # llama-perplexity's and llama-imatrix's


def default_chunk_size(summary: GGUFSummary) -> int:
    """512 tokens, as llama.cpp's tools, or the model's trained context where that is shorter: a
    model trained for 256 tokens was refused for a --ctx 512 nobody had given."""
    trained = summary.context_length
    return min(DEFAULT_CHUNK, trained) if trained else DEFAULT_CHUNK


def evaluate(
    model: Path,
    text_file: Path,
    ctx: int | None = None,
    base: Path | None = None,
    threads: int | None = None,
    progress: ChunkProgress | None = None,
    stop: StopFlag | None = None,
) -> EvalResult:
    """Perplexity of `model` on the text in `text_file`, and with `base` its KL divergence to it.

    `ctx`: tokens per chunk; None for default_chunk_size's. `stop`, once set, ends a chunk's decode
    where it is (Interrupted): one chunk of 8,192 tokens is one llama_decode of a minute or more."""
    from llamadesk.app.engine.scoring import TokenScorer

    text = _read_text(text_file)
    if ctx is None:
        ctx = default_chunk_size(inspect_gguf(model))
    with TokenScorer.load(model, ctx, threads, SHORTEST_CHUNK, stop) as scorer:
        tokens = scorer.tokenize(text)
        starts = chunk_starts(len(tokens), ctx)
        bos = scorer.bos_token if scorer.adds_bos else None
        base_scorer = TokenScorer.load(base, ctx, threads, SHORTEST_CHUNK, stop) if base is not None else None
        try:
            if base_scorer is not None and base_scorer.tokenize(text) != tokens:
                raise BadInputError(
                    f"{base} tokenizes the text differently from {model}; compare only quantizations of the same model"
                )
            if base_scorer is not None and base_scorer.n_vocab != scorer.n_vocab:
                # The same tokens, yet distributions over vocabularies of other sizes (padding tokens
                # added): they cannot be compared position by position (it was an internal error).
                raise BadInputError(
                    f"{base} has a vocabulary of {base_scorer.n_vocab} tokens and {model} one of {scorer.n_vocab}; "
                    "compare only quantizations of the same model"
                )
            nll, base_nll, kld, same_top = [], [], [], []
            span = scored_span(ctx)
            for done, start in enumerate(starts, 1):
                chunk = chunk_tokens(tokens, start, ctx, bos)
                targets = np.array(tokens[start + span.start + 1 : start + span.stop + 1])
                logits = scorer.scored_logits(chunk, span)
                base_logits = base_scorer.scored_logits(chunk, span) if base_scorer is not None else None
                # A few rows at a time: float64 log-probabilities of every row at once were several
                # arrays of 0.5 GB each for a 262k vocabulary.
                for rows in row_blocks(len(targets)):
                    log_probs = finite_log_probs(logits[rows], model)
                    nll.append(qm.token_negative_log_likelihoods(log_probs, targets[rows]))
                    if base_logits is not None:
                        base_log_probs = finite_log_probs(base_logits[rows], base)
                        base_nll.append(qm.token_negative_log_likelihoods(base_log_probs, targets[rows]))
                        kld.append(qm.kl_divergences(base_log_probs, log_probs))
                        same_top.append(qm.top1_matches(base_log_probs, log_probs))
                if progress is not None:
                    progress(done, len(starts))
        finally:
            if base_scorer is not None:
                base_scorer.close()
    all_nll = np.concatenate(nll)
    result = EvalResult(
        model=str(model),
        text=str(text_file),
        text_sha256=hashlib.sha256(text.encode()).hexdigest(),
        ctx=ctx,
        chunks=len(starts),
        scored_tokens=int(all_nll.size),
        cross_entropy=float(np.mean(all_nll)),
        perplexity=qm.perplexity(all_nll),
    )
    if base is None:
        return result
    all_kld = np.concatenate(kld)
    return dataclasses.replace(
        result,
        base=str(base),
        base_perplexity=qm.perplexity(np.concatenate(base_nll)),
        kld_mean=float(np.mean(all_kld)),
        kld_p99=qm.percentile(all_kld, 0.99),
        kld_max=float(np.max(all_kld)),
        top1_agreement=float(np.mean(np.concatenate(same_top))),
    )


def row_blocks(n_rows: int, block: int = ROW_BLOCK) -> list[slice]:
    """Consecutive slices of at most `block` rows covering `n_rows`."""
    return [slice(first, min(first + block, n_rows)) for first in range(0, n_rows, block)]


def finite_log_probs(logits: np.ndarray, model: Path | None) -> np.ndarray:
    """log p of every token per row; BadInputError if the model's outputs are not numbers (NaN
    weights): its perplexity was "nan", saved and printed as JSON that no parser reads."""
    if not np.isfinite(logits).all():
        raise BadInputError(
            f"{model}: the model's outputs are not numbers (NaN or infinite); "
            "the file is damaged, download or convert it again"
        )
    return qm.log_softmax(logits)


def _read_text(path: Path) -> str:
    if not path.is_file():
        what = "not a regular file" if os.path.lexists(path) else "no such text file"
        raise BadInputError(f"{path}: {what}; give a plain UTF-8 text to evaluate on")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise BadInputError(f"{path} is not UTF-8 text; give a plain text file") from err


def eval_file(model: Path) -> Path:
    """Where a model's saved evaluations live: beside it, MODEL.gguf.eval.json."""
    return model.with_name(model.name + EVAL_SUFFIX)


def saved_evaluations(model: Path) -> list[dict[str, Any]]:
    """The evaluations saved for a model (newest text/ctx/base combination each); [] if none.

    For `llamadesk models` and the UI: each entry is an EvalResult as JSON.
    """
    path = eval_file(Path(model))
    if not path.exists():
        return []
    try:
        # Beside a model in an added folder this file may come from anyone: read with limits.
        data = read_json_object(path, "saved evaluations", max_bytes=4 * 1024**2, max_depth=8)
    except BadInputError:
        return []  # a damaged sidecar hides its results, never the model
    results = data.get("results")
    if not isinstance(results, list):
        return []
    return [kept for kept in map(_well_formed, results) if kept is not None]


# What each field of a saved EvalResult must be: a sidecar missing "ctx" or with "perplexity": "x"
# stopped the whole `models` listing (KeyError, a format error) in the line that shows it.
_TEXT, _COUNT, _NUMBER = (str,), (int,), (int, float)
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "model": _TEXT,
    "text": _TEXT,
    "text_sha256": _TEXT,
    "ctx": _COUNT,
    "chunks": _COUNT,
    "scored_tokens": _COUNT,
    "cross_entropy": _NUMBER,
    "perplexity": _NUMBER,
    "base": _TEXT,
    "base_perplexity": _NUMBER,
    "kld_mean": _NUMBER,
    "kld_p99": _NUMBER,
    "kld_max": _NUMBER,
    "top1_agreement": _NUMBER,
}
_SHOWN_FIELDS = ("perplexity", "ctx")  # what summary_line needs


def _well_formed(entry: Any) -> dict[str, Any] | None:
    """`entry`'s EvalResult fields if it has those summary_line shows and each field has its type
    (a number finite: Python's json reads NaN and Infinity, which `models --json` then wrote out
    as invalid JSON), else None: not shown. Other keys are left out."""
    if not isinstance(entry, dict) or any(entry.get(name) is None for name in _SHOWN_FIELDS):
        return None
    kept: dict[str, Any] = {}
    for name, types in _FIELD_TYPES.items():
        value = entry.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if name in entry:
            kept[name] = value
    return kept


# What to do about a model whose folder takes no eval file (eval has no output to choose).
PRINT_ONLY = UnwritableFolder("run eval without --save to have the result printed only")


def check_can_save_evaluation(model: Path) -> None:
    """Refuse --save before the scoring when the eval file cannot be written beside `model` (a
    read-only folder, another app's store): refused after it, minutes of work were lost unprinted."""
    store = other_apps_store(model)
    if store is not None:
        raise BadInputError(f"{model} is in {store}'s store, where llamadesk writes nothing; leave out --save")
    check_writable_target(eval_file(model), force=True, unwritable=PRINT_ONLY)


def save_evaluation(result: EvalResult) -> Path:
    """Add `result` to the model's eval file, replacing an earlier one on the same text, ctx and base."""
    model = Path(result.model)
    key = (result.text_sha256, result.ctx, _base_name(result.base))
    kept = [
        r for r in saved_evaluations(model) if (r.get("text_sha256"), r.get("ctx"), _base_name(r.get("base"))) != key
    ]
    target = eval_file(model)
    with atomic_output(target, force=True, unwritable=PRINT_ONLY) as tmp:
        # allow_nan=False: NaN is not JSON; evaluate() refuses non-finite outputs, this guards the rule.
        tmp.write_text(
            json.dumps({"results": [*kept, result.to_json()]}, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )
    return target


def _base_name(base: str | None) -> str | None:
    return os.path.basename(base) if base else None


def summary_line(result: dict[str, Any]) -> str:
    """One line for a saved evaluation: 'PPL 19.09 @512; KLD 0.064 vs model-f16.gguf'."""
    line = f"PPL {result['perplexity']:.2f} @{result['ctx']}"
    if result.get("kld_mean") is not None and not math.isnan(result["kld_mean"]):
        line += f"; KLD {result['kld_mean']:.4f} vs {_base_name(result.get('base'))}"
    return line
