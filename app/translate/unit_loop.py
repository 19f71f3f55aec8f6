"""The loop every translation job runs: units in order, resumed or translated, cancellable, as events.

A text job (job.py: chunks of a document or lines) and a file job (file_job.py: a catalog's
entries, subtitle cues, a page's runs) differ in how they cut their input and put it back, and in
how one unit is put to the model. What they share is here, once: skip what the resume sidecar
already has, keep the text as it is when source and target are the same language, stream the
model's output, record each finished unit in the sidecar, judge its confidence, and stop cleanly
when cancelled. Each job passes a `TranslateOne` callback for the part that is its own.

With --parallel, translate_units_in_parallel does the same with several units in flight on the
batched decoder (parallel.py), still reporting them in document order.
"""

from __future__ import annotations

import threading
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
from llamadesk.app.translate.parallel import ParallelTranslators, Started, Stopped, run_chains
from llamadesk.app.translate.resume import ResumeLog
from llamadesk.app.translate.segment import SegmentResult, SegmentTranslator

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
            yield JobCancelled(_kept(units, resume, results), total)
            return None
        previous = resume.resumed(unit.key, unit.text) if resume is not None else None
        if previous is not None:
            result = previous
        elif source == target:
            result = SegmentResult(unit.text, unit.text)
        else:
            yield ChunkStarted(index, total, unit.text)
            stream = (lambda piece, i=index: on_text(ChunkText(i, piece))) if on_text is not None else None
            try:
                result = translate_one(index, results, stream)
            except GenerationStopped:
                yield JobCancelled(_kept(units, resume, results), total)
                return None
            if cancelled():  # the stop came as the unit ended: it may be cut short
                yield JobCancelled(_kept(units, resume, results), total)
                return None
            if resume is not None:
                resume.record(unit.key, result.translation, result)
        result = assess(result, source, target)
        results.append(result)
        yield ChunkDone(index, total, result)
    return results


def _kept(units: Sequence[LoopUnit], resume: ResumeLog | None, results: Sequence[SegmentResult]) -> int:
    """How many units a stopped run leaves done: those in the resume sidecar, wherever they are in
    the document (with --parallel, units past the first unfinished one too: counting only the run
    from the start said "0 of 40 kept" of a sidecar holding four), else the run from the start."""
    if resume is None:
        return len(results)
    return sum(1 for unit in units if resume.get(unit.key) is not None)


# translate_one(translator, index, results before it in its chain, stream) -> the unit's result:
# as TranslateOne, with the translator of the worker that runs it.
TranslateOneWith = Callable[
    [SegmentTranslator, int, Sequence[SegmentResult], Callable[[str], None] | None], SegmentResult
]


def translate_units_in_parallel(
    units: Sequence[LoopUnit],
    chains: Sequence[Sequence[int]],
    translate_one: TranslateOneWith,
    *,
    translators: Sequence[SegmentTranslator],
    source: Language,
    target: Language,
    strategy: str,
    detected_confidence: float | None = None,
    resume: ResumeLog | None = None,
    cancel: threading.Event,
    on_text: Callable[[ChunkText], None] | None = None,
) -> Generator[TranslationEvent, None, list[SegmentResult] | None]:
    """translate_units with several units in flight (parallel.run_chains on a batched decoder).

    `chains` lists unit indices that depend on each other (a unit sees the ones before it in its
    chain as context); chains run side by side. Events are those of translate_units, with
    ChunkDone still in document order; `on_text` is called from the workers' threads.
    """
    total = len(units)
    resumed = sum(1 for unit in units if resume is not None and resume.get(unit.key) is not None)
    yield JobStarted(total, resumed, source, target, detected_confidence, strategy)

    def needs_model(unit: LoopUnit) -> bool:
        return source != target and not (resume is not None and resume.get(unit.key) is not None)

    def one(translator: SegmentTranslator, index: int, before: Sequence[SegmentResult]) -> SegmentResult:
        unit = units[index]
        previous = resume.resumed(unit.key, unit.text) if resume is not None else None
        if previous is not None:
            return previous
        if source == target:
            return SegmentResult(unit.text, unit.text)
        stream = (lambda piece, i=index: on_text(ChunkText(i, piece))) if on_text is not None else None
        result = translate_one(translator, index, list(before), stream)
        if resume is not None and not cancel.is_set():  # a unit cut short by a stop is not recorded
            resume.record(unit.key, result.translation, result)
        return result

    results: list[SegmentResult] = []
    finished: dict[int, SegmentResult] = {}

    def cost(chain: Sequence[int]) -> int:  # what a chain will ask of the model, roughly
        return sum(len(units[i].text) for i in chain if needs_model(units[i]))

    for event in run_chains(chains, translators, one, cancel, cost):
        if isinstance(event, Stopped) or cancel.is_set():
            yield JobCancelled(_kept(units, resume, results), total)
            return None
        if isinstance(event, Started):
            if needs_model(units[event.index]):
                yield ChunkStarted(event.index, total, units[event.index].text)
            continue
        finished[event.index] = event.result
        while len(results) in finished:
            results.append(assess(finished.pop(len(results)), source, target))
            yield ChunkDone(len(results) - 1, total, results[-1])
    if len(results) < total:  # cancelled as the last units ended
        yield JobCancelled(_kept(units, resume, results), total)
        return None
    return results


def translate_all(
    units: Sequence[LoopUnit],
    translate_one: TranslateOneWith,
    *,
    translator: SegmentTranslator,
    parallel: ParallelTranslators | None,
    chains: Callable[[], Sequence[Sequence[int]]],
    cancel: threading.Event,
    source: Language,
    target: Language,
    detected_confidence: float | None = None,
    resume: ResumeLog | None = None,
    on_text: Callable[[ChunkText], None] | None = None,
) -> Generator[TranslationEvent, None, list[SegmentResult] | None]:
    """A job's units one after the other with `translator`, or with `parallel` several in flight.

    `translate_one(translator, index, before, stream)` gets the finished units before `index`: all
    of them in order when sequential, those of its own chain (`chains()`) when parallel.
    """
    common = dict(
        source=source,
        target=target,
        strategy=translator.strategy.name,
        detected_confidence=detected_confidence,
        resume=resume,
        on_text=on_text,
    )
    if parallel is None:

        def one(index: int, results: Sequence[SegmentResult], stream) -> SegmentResult:
            return translate_one(translator, index, results, stream)

        return (yield from translate_units(units, one, cancelled=cancel.is_set, **common))
    return (
        yield from translate_units_in_parallel(
            units, chains(), translate_one, translators=parallel.translators, cancel=cancel, **common
        )
    )
