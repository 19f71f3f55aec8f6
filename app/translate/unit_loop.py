"""The loop every translation job runs: units in order, resumed or translated, cancellable, as events.

A text job (job.py: chunks of a document or lines) and a file job (file_job.py: a catalog's
entries, subtitle cues, a page's runs) differ in how they cut their input and put it back, and in
how one unit is put to the model. What they share is here, once: skip what the resume sidecar
already has, keep the text as it is when source and target are the same language, stream the
model's output, record each finished unit in the sidecar, judge its confidence, and stop cleanly
when cancelled. Each job passes a `TranslateOne` callback for the part that is its own.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

from llamadesk.app.translate.confidence import assess
from llamadesk.app.translate.events import (
    ChunkDone,
    ChunkStarted,
    ChunkText,
    JobCancelled,
    JobStarted,
    TranslationEvent,
)
from llamadesk.app.translate.generation import GenerationStopped
from llamadesk.app.translate.languages import Language
from llamadesk.app.translate.resume import ResumeLog
from llamadesk.app.translate.segment import SegmentResult

# translate_one(index, results so far, stream) -> the unit's result. `stream` (or None) takes the
# model's output as it comes; the results so far are the finished units before `index`, for context.
TranslateOne = Callable[[int, Sequence[SegmentResult], Callable[[str], None] | None], SegmentResult]


@dataclass(frozen=True)
class LoopUnit:
    """One unit as the loop sees it."""

    key: str  # its identity in the resume sidecar
    text: str  # the source text (what a same-language or resumed result holds as its source)


def translate_units(
    units: Sequence[LoopUnit],
    translate_one: TranslateOne,
    *,
    source: Language,
    target: Language,
    strategy: str,
    detected_confidence: float | None = None,
    resume: ResumeLog | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    on_text: Callable[[ChunkText], None] | None = None,
) -> Generator[TranslationEvent, None, list[SegmentResult] | None]:
    """Yield JobStarted, then ChunkStarted/ChunkDone per unit (ChunkText through `on_text`).

    Returns every unit's assessed result in order, or None after yielding JobCancelled when
    `cancelled()` turns true or the model was stopped (a unit cut short is not recorded).
    """
    total = len(units)
    resumed = sum(1 for unit in units if resume is not None and resume.get(unit.key) is not None)
    yield JobStarted(total, resumed, source, target, detected_confidence, strategy)
    results: list[SegmentResult] = []
    for index, unit in enumerate(units):
        if cancelled():
            yield JobCancelled(len(results), total)
            return None
        previous = resume.get(unit.key) if resume is not None else None
        if previous is not None:
            result = SegmentResult(unit.text, previous, resumed=True)
        elif source == target:
            result = SegmentResult(unit.text, unit.text)
        else:
            yield ChunkStarted(index, total, unit.text)
            stream = (lambda piece, i=index: on_text(ChunkText(i, piece))) if on_text is not None else None
            try:
                result = translate_one(index, results, stream)
            except GenerationStopped:
                yield JobCancelled(len(results), total)
                return None
            if cancelled():  # the stop came as the unit ended: it may be cut short
                yield JobCancelled(len(results), total)
                return None
            if resume is not None:
                resume.record(unit.key, result.translation)
        result = assess(result, source, target)
        results.append(result)
        yield ChunkDone(index, total, result)
    return results
