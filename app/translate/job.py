"""Translating a whole text (a document or piped lines) as a cancellable stream of events.

`TranslationJob.run()` is a generator of typed events (events.py), so the CLI prints progress
from it and a UI worker forwards them as messages; `cancel()` may be called from any thread and
stops the model mid-chunk. Finished chunks go to the resume log as they complete.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from llamadesk.app.translate.confidence import assess
from llamadesk.app.translate.detection import detect_language
from llamadesk.app.translate.events import (
    ChunkDone,
    ChunkStarted,
    ChunkText,
    JobCancelled,
    JobFinished,
    JobStarted,
    TranslationEvent,
)
from llamadesk.app.translate.generation import GenerationStopped
from llamadesk.app.translate.languages import Language
from llamadesk.app.translate.parallel import ParallelTranslators, Started, Stopped, run_chains
from llamadesk.app.translate.resume import ResumeLog
from llamadesk.app.translate.segment import SegmentResult, SegmentTranslator
from llamadesk.app.translate.segmentation import Chunk, Piece, assemble, pack_chunks, split_document, split_lines

# How many preceding chunks (of the same document) the model sees as examples for consistency.
CONTEXT_CHUNKS = 1
# Longest chunk, in source tokens, that the model is given at once. Small models translate
# sentence-sized inputs far better than paragraphs, so this stays modest even when the context
# would allow much more; it is lowered further when the context is small.
MAX_CHUNK_TOKENS = 96
PROMPT_RESERVE_TOKENS = 512  # room for the prompt's instructions and examples


@dataclass(frozen=True)
class JobSettings:
    target: Language
    source: Language | None = None  # None: detect it
    mode: Literal["document", "lines"] = "document"
    glossary: dict[str, str] | None = None
    max_chunk_tokens: int = MAX_CHUNK_TOKENS
    context_chunks: int = CONTEXT_CHUNKS


def chunk_budget(context_size: int, wanted: int = MAX_CHUNK_TOKENS) -> int:
    """Source tokens per chunk so that prompt, chunk and its translation fit the context."""
    fitting = (context_size - PROMPT_RESERVE_TOKENS) // 4  # source + ~3x for context pair and output
    return max(16, min(wanted, fitting))


class TranslationJob:
    """One text to translate with one segment translator."""

    def __init__(
        self,
        translator: SegmentTranslator,
        text: str,
        settings: JobSettings,
        resume: ResumeLog | None = None,
        parallel: ParallelTranslators | None = None,
    ):
        """`parallel`: translators on a batched decoder, to have several chunks in flight at once."""
        self.translator = translator
        self.parallel = parallel
        self.settings = settings
        self.resume = resume
        self.pieces: list[Piece] = split_lines(text) if settings.mode == "lines" else split_document(text)
        generator = translator.generator
        budget = chunk_budget(generator.context_size, settings.max_chunk_tokens)
        self.chunks: list[Chunk] = pack_chunks(self.pieces, budget, generator.count_tokens)
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Stop as soon as possible (any thread); run() then yields JobCancelled and ends."""
        self._cancel.set()
        self.translator.generator.request_stop()
        if self.parallel is not None:
            self.parallel.request_stop()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def source_language(self) -> tuple[Language, float | None]:
        if self.settings.source is not None:
            return self.settings.source, None
        prose = " ".join(chunk.text for chunk in self.chunks)
        return detect_language(prose)

    def run(self, on_text: Callable[[ChunkText], None] | None = None) -> Iterator[TranslationEvent]:
        """Translate chunk by chunk, yielding progress; `on_text` sees each chunk's output as it streams.

        `on_text` is called from inside the model's generation (the iterating thread, or with
        `parallel` the batched decoder's thread), so a UI can show text before the chunk is done.
        """
        started = time.perf_counter()
        source, confidence = self.source_language()
        target = self.settings.target
        total = len(self.chunks)
        resumed = sum(1 for c in self.chunks if self.resume and self.resume.get(c.text) is not None)
        yield JobStarted(total, resumed, source, target, confidence, self.translator.strategy.name)
        results: list[SegmentResult] = []
        steps = self._run_parallel if self.parallel is not None else self._run_in_order
        for event in steps(source, target, results, on_text):
            yield event
            if isinstance(event, JobCancelled):
                return
        text = assemble(self.pieces, self.chunks, [r.translation for r in results])
        yield JobFinished(text, tuple(results), time.perf_counter() - started)

    def _run_in_order(
        self, source: Language, target: Language, results: list[SegmentResult], on_text
    ) -> Iterator[TranslationEvent]:
        """One chunk after the other, each seeing the chunks before it as context."""
        total = len(self.chunks)
        for index in range(total):
            if self.cancelled:
                yield JobCancelled(len(results), total)
                return
            if self._needs_model(index, source, target):
                yield ChunkStarted(index, total, self.chunks[index].text)
            try:
                context = self._context(index, results)
                result = self._translate_one(self.translator, index, source, target, context, on_text)
            except GenerationStopped:
                yield JobCancelled(len(results), total)
                return
            if self.cancelled:  # the stop came as the chunk ended: it may be cut short
                yield JobCancelled(len(results), total)
                return
            results.append(assess(result, source, target))
            yield ChunkDone(index, total, results[-1])

    def _run_parallel(
        self, source: Language, target: Language, results: list[SegmentResult], on_text
    ) -> Iterator[TranslationEvent]:
        """Paragraphs side by side on the batched decoder; ChunkDone still in document order.

        A chunk sees the chunks before it in the same paragraph as context (not the paragraph
        before: that would chain the whole document into one sequence).
        """
        assert self.parallel is not None
        total = len(self.chunks)
        chains: list[list[int]] = []
        for index, chunk in enumerate(self.chunks):
            same_piece = chains and self.chunks[chains[-1][-1]].piece == chunk.piece
            if same_piece and self.settings.mode != "lines" and self.settings.context_chunks > 0:
                chains[-1].append(index)
            else:
                chains.append([index])

        def translate_one(translator: SegmentTranslator, index: int, before) -> SegmentResult:
            context = self._context_from(before)
            return self._translate_one(translator, index, source, target, context, on_text)

        finished: dict[int, SegmentResult] = {}
        for event in run_chains(chains, self.parallel.translators, translate_one, self._cancel):
            if isinstance(event, Stopped) or self.cancelled:
                yield JobCancelled(len(results), total)
                return
            if isinstance(event, Started):
                if self._needs_model(event.index, source, target):
                    yield ChunkStarted(event.index, total, self.chunks[event.index].text)
                continue
            finished[event.index] = event.result
            while len(results) in finished:
                results.append(assess(finished.pop(len(results)), source, target))
                yield ChunkDone(len(results) - 1, total, results[-1])
        if len(results) < total:  # cancelled as the last chunks ended
            yield JobCancelled(len(results), total)

    def _needs_model(self, index: int, source: Language, target: Language) -> bool:
        text = self.chunks[index].text
        return source != target and not (self.resume and self.resume.get(text) is not None)

    def _translate_one(
        self,
        translator: SegmentTranslator,
        index: int,
        source: Language,
        target: Language,
        context: tuple[tuple[str, str], ...],
        on_text: Callable[[ChunkText], None] | None,
    ) -> SegmentResult:
        """Chunk `index` translated (or taken from the resume log, or copied when the languages match)."""
        chunk = self.chunks[index]
        previous = self.resume.get(chunk.text) if self.resume else None
        if previous is not None:
            return SegmentResult(chunk.text, previous, resumed=True)
        if source == target:
            return SegmentResult(chunk.text, chunk.text)
        stream = (lambda piece, i=index: on_text(ChunkText(i, piece))) if on_text else None
        result = translator.translate(chunk.text, source, target, self.settings.glossary, context, stream)
        if self.resume is not None and not self.cancelled:
            self.resume.record(chunk.text, result.translation)
        return result

    def _context(self, index: int, results: list[SegmentResult]) -> tuple[tuple[str, str], ...]:
        """The preceding chunks of the document, as (source, translation) pairs."""
        if self.settings.mode == "lines":
            return ()
        return self._context_from(results[max(0, index - self.settings.context_chunks) : index])

    def _context_from(self, before) -> tuple[tuple[str, str], ...]:
        """The last context_chunks of `before` that were translated, as (source, translation) pairs."""
        if self.settings.context_chunks <= 0:
            return ()
        pairs = []
        for result in list(before)[-self.settings.context_chunks :]:
            if result.fallback is None and result.translation.strip():
                pairs.append((result.source, result.translation))
        return tuple(pairs)
