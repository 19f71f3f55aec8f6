"""Translating a structured file (a gettext catalog, subtitles, a web page) unit by unit.

A format module (formats/) reads the file into `Unit`s, the pieces of text a person reads, each
with what the model should know about it, and renders the file back from their translations;
everything else in the file (placeholders, tags, timing, comments) is the format's to keep.
`FileJob.run()` runs the same loop as a text job (unit_loop.translate_units) and yields the same
events, so the CLI's progress, Ctrl-C and resume sidecar work the same way, and each result
carries its confidence (confidence.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from llamadesk.app.translate.detection import detect_language
from llamadesk.app.translate.events import (
    ChunkDone,
    ChunkStarted,
    ChunkText,
    JobFinished,
    JobStarted,
    TranslationEvent,
)
from llamadesk.app.translate.job import JobSettings
from llamadesk.app.translate.languages import Language
from llamadesk.app.translate.parallel import ParallelTranslators
from llamadesk.app.translate.resume import ResumeLog
from llamadesk.app.translate.segment import SegmentResult, SegmentTranslator
from llamadesk.app.translate.unit_loop import LoopUnit, translate_all


@dataclass(frozen=True)
class Unit:
    """One piece of a file to translate."""

    text: str
    note: str = ""  # what the text is, for the model (a msgctxt)
    follows: bool = False  # continues the previous unit (the next cue, the next paragraph): it is context

    @property
    def key(self) -> str:
        """Its identity in the resume sidecar: the same text under another note is another unit."""
        return f"{self.note}\x04{self.text}" if self.note else self.text


class TranslatableFile(Protocol):
    """What a format module reads a file into."""

    @property
    def units(self) -> Sequence[Unit]: ...

    def render(self, results: Sequence[SegmentResult]) -> str:
        """The whole file with results[i] in place of units[i]."""
        ...

    def readable(self, index: int, text: str) -> str:
        """A text about units[index] (its source, a translation, a problem) as the file writes it.

        A format may put stand-ins of its own into a unit's text (a page's inline tags); what the
        user reads in --json, notes and the UI shows what they stand for instead.
        """
        ...


def judged_by_format(document: TranslatableFile, index: int, result: SegmentResult) -> SegmentResult:
    """`result` with what its format alone can see counted in its confidence (a format may have a
    `judge(index, result)`: subtitles know how many cues a translation must fill)."""
    judge = getattr(document, "judge", None)
    return judge(index, result) if judge is not None else result


class FileJob:
    """One file to translate with one segment translator."""

    def __init__(
        self,
        translator: SegmentTranslator,
        document: TranslatableFile,
        settings: JobSettings,
        resume: ResumeLog | None = None,
        parallel: ParallelTranslators | None = None,
    ):
        """`parallel`: translators on a batched decoder, to have several units in flight at once."""
        self.translator = translator
        self.parallel = parallel
        self.document = document
        self.units = list(document.units)
        self.settings = settings
        self.resume = resume
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()
        self.translator.generator.request_stop()
        if self.parallel is not None:
            self.parallel.request_stop()

    def source_language(self) -> tuple[Language, float | None]:
        if self.settings.source is not None:
            return self.settings.source, None
        return detect_language(" ".join(unit.text for unit in self.units))

    def run(self, on_text: Callable[[ChunkText], None] | None = None) -> Iterator[TranslationEvent]:
        """Translate unit by unit, yielding progress; `on_text` sees each unit's output as it streams."""
        started = time.perf_counter()
        target = self.settings.target
        if not self.units:  # nothing to translate (a catalog already complete): the file as it is
            source = self.settings.source or target
            yield JobStarted(0, 0, source, target, None, self.translator.strategy.name)
            yield JobFinished(self.document.render([]), (), time.perf_counter() - started)
            return
        source, confidence = self.source_language()
        typography = self.settings.typeset_document(unit.text for unit in self.units)

        def translate_one(translator: SegmentTranslator, index: int, before, stream) -> SegmentResult:
            unit = self.units[index]
            context = self._context(unit, before)
            return self._translate(translator, unit, source, target, context, stream, typography)

        events = translate_all(
            [LoopUnit(unit.key, unit.text) for unit in self.units],
            translate_one,
            translator=self.translator,
            parallel=self.parallel,
            chains=self._chains,
            cancel=self._cancel,
            source=source,
            target=target,
            detected_confidence=confidence,
            resume=self.resume,
            on_text=on_text,
        )
        results = yield from self._readable_events(events)
        if results is None:
            return
        results = [judged_by_format(self.document, i, result) for i, result in enumerate(results)]
        shown = tuple(self._readable_result(i, result) for i, result in enumerate(results))
        yield JobFinished(self.document.render(results), shown, time.perf_counter() - started)

    def _readable_events(
        self, events: Generator[TranslationEvent, None, list[SegmentResult] | None]
    ) -> Generator[TranslationEvent, None, list[SegmentResult] | None]:
        """`events` with each unit's texts as the file writes them; returns the loop's own results.

        Only what is reported changes: the resume sidecar and render() keep the units' own texts.
        """
        try:
            while True:
                try:
                    event = next(events)
                except StopIteration as finished:
                    return finished.value
                if isinstance(event, ChunkStarted):
                    event = replace(event, source=self.document.readable(event.index, event.source))
                elif isinstance(event, ChunkDone):
                    judged = judged_by_format(self.document, event.index, event.result)
                    event = replace(event, result=self._readable_result(event.index, judged))
                yield event
        finally:
            events.close()

    def _readable_result(self, index: int, result: SegmentResult) -> SegmentResult:
        def shown(text: str) -> str:
            return self.document.readable(index, text)

        return replace(
            result,
            source=shown(result.source),
            translation=shown(result.translation),
            problems=tuple(map(shown, result.problems)),
            confidence_reasons=tuple(map(shown, result.confidence_reasons)),
        )

    def _chains(self) -> list[list[int]]:
        """Units that run one after the other with --parallel: a unit that follows another waits for
        it (its context); the rest run side by side."""
        chains: list[list[int]] = []
        for index, unit in enumerate(self.units):
            if chains and unit.follows and self.settings.context_chunks > 0:
                chains[-1].append(index)
            else:
                chains.append([index])
        return chains

    def _context(self, unit: Unit, results: Sequence[SegmentResult]) -> tuple[tuple[str, str], ...]:
        if not unit.follows or not results or self.settings.context_chunks <= 0:
            return ()
        last = results[-1]
        if last.fallback is not None or not last.translation.strip() or "\n" in last.source:
            return ()
        return ((last.source.strip(), last.translation.strip()),)

    def _translate(
        self,
        translator: SegmentTranslator,
        unit: Unit,
        source: Language,
        target: Language,
        context: tuple[tuple[str, str], ...],
        on_text: Callable[[str], None] | None,
        typography: bool,
    ) -> SegmentResult:
        """The unit's translation; a text of several lines is translated line by line.

        The translator answers with one line (that is how it knows the model is done), so a
        msgid with newlines is put to it a line at a time and put back together with the same
        line breaks; blank lines stay blank.
        """
        glossary = self.settings.glossary
        lines = unit.text.split("\n")
        if len(lines) == 1:
            return translator.translate(unit.text, source, target, glossary, context, on_text, unit.note, typography)
        parts: list[SegmentResult] = []
        for line in lines:
            if not line.strip():
                parts.append(SegmentResult(line, line))
                continue
            before = next((p for p in reversed(parts) if p.source.strip() and p.fallback is None), None)
            pairs = ((before.source.strip(), before.translation.strip()),) if before else context
            parts.append(translator.translate(line, source, target, glossary, pairs, on_text, unit.note, typography))
        return SegmentResult(
            source=unit.text,
            translation="\n".join(p.translation for p in parts),
            seconds=sum(p.seconds for p in parts),
            attempts=sum(p.attempts for p in parts),
            fallback=next((p.fallback for p in parts if p.fallback), None),
            problems=tuple(problem for p in parts for problem in p.problems),
        )
