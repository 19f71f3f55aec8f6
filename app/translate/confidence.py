"""How far a translated segment can be trusted: a score from 0 to 1, and the reasons.

Two kinds of evidence. The model's own: the geometric mean of the probabilities of the tokens
it wrote (its mean token log-probability, reported by the engine), which falls when the model
is unsure of its words. And cheap checks after the fact: a fallback was needed, problems
remained after the retry, the output copies the source, a protected span was lost, a Markdown
link no longer works (markdown_links.py), the output reads as the source language (py3langid,
choosing between the two languages), or its length is far off the source's. It says "look at
this one", not how good a translation is: a model can be sure of a mistranslation. `.po` files
get `#, fuzzy` on low-confidence entries; `--json` shows the score and its reasons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from llamadesk.app.translate.detection import reads_as_source
from llamadesk.app.translate.languages import Language
from llamadesk.app.translate.markdown_links import broken_links
from llamadesk.app.translate.protection import lost_spans
from llamadesk.app.translate.segment import SegmentResult, is_copy

# Below this, a segment is low-confidence (fuzzy in .po, flagged in --json).
LOW_CONFIDENCE = 0.5
# Translations run from about half to about twice the source's length; far outside is suspect.
LENGTH_RATIO_RANGE = (1 / 3, 3.0)
LENGTH_CHECK_MIN_CHARS = 20  # "OK" -> "D'accord" says nothing

# A geometric-mean token probability at or above which the model counts as sure of its words;
# below it the score falls in proportion (0.35 and under is low confidence).
SURE_TOKEN_PROBABILITY = 0.7

# What each finding multiplies the score by: data, so the weights are in one place.
FACTORS = {
    "source kept": 0.0,
    "copy of the source": 0.0,
    "lost": 0.0,
    "link broken": 0.2,
    "reads as the source language": 0.2,
    "translated piecewise": 0.5,
    "problems after retry": 0.5,
    "length ratio": 0.6,
    # a subtitle group translated into fewer words than its cues: the last cues keep the source
    "cues left in the source": 0.3,
}


def is_low(result: SegmentResult) -> bool:
    """Whether an assessed segment should be reviewed by a person."""
    return result.confidence is not None and result.confidence < LOW_CONFIDENCE


def low_confidence_spans(text: str, results: Sequence[SegmentResult]) -> list[tuple[int, int]]:
    """(start, end) in `text` of each low-confidence result's translation, for a UI to highlight.

    The translations are looked for in order, each after the one before, so a phrase that
    occurs twice is found where its segment put it; one the output does not hold as it is (a
    page's escaped text) is skipped.
    """
    spans, position = [], 0
    for result in results:
        piece = result.translation.strip()
        found = text.find(piece, position) if piece else -1
        if found < 0:
            continue
        if is_low(result):
            spans.append((found, found + len(piece)))
        position = found + len(piece)
    return spans


def assess(result: SegmentResult, source: Language, target: Language) -> SegmentResult:
    """`result` with its confidence set (a resumed segment is judged the same way as a new one)."""
    text, out = result.source, result.translation
    if source == target or not text.strip():
        return replace(result, confidence=1.0)
    findings: list[tuple[str, str]] = []  # (factor key, reason for the user)
    if result.fallback == "source-kept":
        findings.append(("source kept", "the source was kept: no usable translation"))
    elif result.fallback == "piecewise":
        findings.append(("translated piecewise", "translated piece by piece around its placeholders"))
    if is_copy(text, out) and result.fallback != "source-kept":
        findings.append(("copy of the source", "the output repeats the source"))
    lost = lost_spans(text, out)
    if lost:
        findings.append(("lost", "lost " + ", ".join(map(repr, lost))))
    broken = broken_links(text, out)
    if broken:
        findings.append(("link broken", "; ".join(broken)))
    remaining = [p for p in result.problems if not p.startswith("first try:")]
    if remaining and result.fallback is None:
        findings.append(("problems after retry", "; ".join(remaining)))
    if result.fallback != "source-kept" and reads_as_source(out, source, target):
        findings.append(("reads as the source language", f"the output reads as {source.name}"))
    if len(text.strip()) >= LENGTH_CHECK_MIN_CHARS:
        ratio = len(out.strip()) / len(text.strip())
        low, high = LENGTH_RATIO_RANGE
        if not low <= ratio <= high:
            findings.append(("length ratio", f"{ratio:.1f}x the source's length"))
    score = 1.0
    for key, _ in findings:
        score *= FACTORS[key]
    reasons = [reason for _, reason in findings]
    if result.mean_logprob is not None:
        probability = math.exp(result.mean_logprob)
        if probability < SURE_TOKEN_PROBABILITY:
            score *= probability / SURE_TOKEN_PROBABILITY
            reasons.append(f"the model was unsure (mean token probability {probability:.2f})")
    return replace(result, confidence=score, confidence_reasons=tuple(reasons))
