"""Translating a whole text (a document or piped lines) as a cancellable stream of events.

`TranslationJob.run()` is a generator of typed events (events.py), so the CLI prints progress
from it and a UI worker forwards them as messages; `cancel()` may be called from any thread and
stops the model mid-chunk. Finished chunks go to the resume log as they complete. The loop over
chunks is unit_loop.translate_units, shared with file jobs; this module cuts the text into chunks,
gives each its context and assembles the translations.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from llamadesk.app.translate.detection import detect_language
from llamadesk.app.translate.events import ChunkText, JobFinished, TranslationEvent
from llamadesk.app.translate.languages import Language
from llamadesk.app.translate.resume import ResumeLog
from llamadesk.app.translate.segment import SegmentResult, SegmentTranslator
from llamadesk.app.translate.segmentation import Chunk, Piece, assemble, pack_chunks, split_document, split_lines
from llamadesk.app.translate.unit_loop import LoopUnit, translate_units

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
        self, translator: SegmentTranslator, text: str, settings: JobSettings, resume: ResumeLog | None = None
    ):
        self.translator = translator
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

        `on_text` is called from inside the model's generation (same thread as the iteration),
        so a UI can show text before the chunk is done.
        """
        started = time.perf_counter()
        source, confidence = self.source_language()
        target = self.settings.target

        def translate_one(index: int, results: Sequence[SegmentResult], stream) -> SegmentResult:
            context = self._context(index, results)
            text = self.chunks[index].text
            return self.translator.translate(text, source, target, self.settings.glossary, context, stream)

        results = yield from translate_units(
            [LoopUnit(chunk.text, chunk.text) for chunk in self.chunks],
            translate_one,
            source=source,
            target=target,
            strategy=self.translator.strategy.name,
            detected_confidence=confidence,
            resume=self.resume,
            cancelled=self._cancel.is_set,
            on_text=on_text,
        )
        if results is None:
            return
        text = assemble(self.pieces, self.chunks, [r.translation for r in results])
        yield JobFinished(text, tuple(results), time.perf_counter() - started)

    def _context(self, index: int, results: Sequence[SegmentResult]) -> tuple[tuple[str, str], ...]:
        """The preceding chunks of the same paragraph-run, as (source, translation) pairs."""
        if self.settings.mode == "lines" or self.settings.context_chunks <= 0:
            return ()
        pairs = []
        for previous in range(index - 1, max(-1, index - 1 - self.settings.context_chunks), -1):
            result = results[previous]
            if result.fallback is None and result.translation.strip():
                pairs.append((result.source, result.translation))
        return tuple(reversed(pairs))
