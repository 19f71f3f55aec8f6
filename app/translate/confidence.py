"""How far a translated segment can be trusted: a score from cheap checks, and the reasons.

The engine does not expose the model's token probabilities to translation, so the score is
built from what can be checked after the fact: a fallback was needed, problems remained after
the retry, the output copies the source, a protected span was lost, the output reads as the
source language (py3langid, choosing between the two languages), or its length is far off the
source's. It says "look at this one", not how good a translation is: a fluent mistranslation
passes every check. `.po` files get `#, fuzzy` on low-confidence entries; `--json` shows the
score and its reasons.
"""

from __future__ import annotations

from dataclasses import replace

from llamadesk.app.translate.detection import reads_as_source
from llamadesk.app.translate.languages import Language
from llamadesk.app.translate.protection import lost_spans
from llamadesk.app.translate.segment import SegmentResult, is_copy

# Below this, a segment is low-confidence (fuzzy in .po, flagged in --json).
LOW_CONFIDENCE = 0.5
# Translations run from about half to about twice the source's length; far outside is suspect.
LENGTH_RATIO_RANGE = (1 / 3, 3.0)
LENGTH_CHECK_MIN_CHARS = 20  # "OK" -> "D'accord" says nothing

# What each finding multiplies the score by: data, so the weights are in one place.
FACTORS = {
    "source kept": 0.0,
    "copy of the source": 0.0,
    "lost": 0.0,
    "reads as the source language": 0.2,
    "translated piecewise": 0.5,
    "problems after retry": 0.5,
    "length ratio": 0.6,
}


def is_low(result: SegmentResult) -> bool:
    """Whether an assessed segment should be reviewed by a person."""
    return result.confidence is not None and result.confidence < LOW_CONFIDENCE


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
    return replace(result, confidence=score, confidence_reasons=tuple(reason for _, reason in findings))
