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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from llamadesk.app.translate.detection import detect_language
from llamadesk.app.translate.events import ChunkText, JobFinished, TranslationEvent
from llamadesk.app.translate.languages import Language
from llamadesk.app.translate.parallel import ParallelTranslators
from llamadesk.app.translate.resume import ResumeLog
from llamadesk.app.translate.segment import SegmentResult, SegmentTranslator
from llamadesk.app.translate.segmentation import Chunk, Piece, assemble, pack_chunks, split_document, split_lines
from llamadesk.app.translate.typography import is_typeset
from llamadesk.app.translate.unit_loop import LoopUnit, translate_all

# How many preceding chunks of the same paragraph the model sees as examples for consistency. The
# paragraph, not the document: with --parallel, paragraphs are in flight together and cannot see
# each other, and one rule for both ways keeps a document's translation the same whatever
# --parallel the machine picks. Measured too: on bench/batched.py's 16- and 40-paragraph documents,
# the previous paragraph as context cost 1.6-1.8 chrF (unrelated messages there).
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
    # A document is read as Markdown (lines indented 4 columns after a blank line are code); a
    # plain .txt file is not: there they are a letter's indented paragraphs, to be translated.
    markdown: bool = True
    glossary: dict[str, str] | None = None
    max_chunk_tokens: int = MAX_CHUNK_TOKENS
    context_chunks: int = CONTEXT_CHUNKS
    # The target language's quotes and apostrophes where the source document is typeset
    # (typography.py); False keeps the marks the model writes (`translate --keep-quotes`).
    typography: bool = True

    def typeset_document(self, texts: Iterable[str]) -> bool:
        """Whether a document of these texts gets the target's typography: decided once, for all of it."""
        return self.typography and any(is_typeset(text) for text in texts)


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
        self.pieces: list[Piece] = (
            split_lines(text) if settings.mode == "lines" else split_document(text, indented_code=settings.markdown)
        )
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
        `parallel` the batched decoder's workers), so a UI can show text before the chunk is done.
        """
        started = time.perf_counter()
        source, confidence = self.source_language()
        target = self.settings.target
        typography = self.settings.typeset_document(chunk.text for chunk in self.chunks)

        def translate_one(translator: SegmentTranslator, index: int, before, stream) -> SegmentResult:
            """Chunk `index` by `translator`, the last chunks `before` it as context (none for lines)."""
            text, glossary = self.chunks[index].text, self.settings.glossary
            context = () if self.settings.mode == "lines" else self._context_from(self._same_paragraph(index, before))
            return translator.translate(text, source, target, glossary, context, stream, typography=typography)

        results = yield from translate_all(
            [LoopUnit(chunk.text, chunk.text) for chunk in self.chunks],
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
        if results is None:
            return
        text = assemble(self.pieces, self.chunks, [r.translation for r in results])
        yield JobFinished(text, tuple(results), time.perf_counter() - started)

    def _same_paragraph(self, index: int, before: Sequence[SegmentResult]) -> Sequence[SegmentResult]:
        """The results in `before` that are chunks of chunk `index`'s paragraph.

        `before` ends with the chunks just before `index`: every earlier chunk when they run one
        at a time, the chunks of its chain with --parallel; either way the paragraph's are last.
        """
        first = index
        while first > 0 and self.chunks[first - 1].piece == self.chunks[index].piece:
            first -= 1
        n = index - first
        return list(before)[len(before) - n :] if n else []

    def _chains(self) -> list[list[int]]:
        """Chunks that run one after the other with --parallel: those of one paragraph (each sees the
        ones before it as context); paragraphs run side by side, as they see nothing of each other."""
        chains: list[list[int]] = []
        for index, chunk in enumerate(self.chunks):
            same_piece = chains and self.chunks[chains[-1][-1]].piece == chunk.piece
            if same_piece and self.settings.mode != "lines" and self.settings.context_chunks > 0:
                chains[-1].append(index)
            else:
                chains.append([index])
        return chains

    def _context_from(self, before: Sequence[SegmentResult]) -> tuple[tuple[str, str], ...]:
        """The last context_chunks of `before` that were translated, as (source, translation) pairs."""
        if self.settings.context_chunks <= 0:
            return ()
        pairs = []
        for result in list(before)[-self.settings.context_chunks :]:
            if result.fallback is None and result.translation.strip():
                pairs.append((result.source, result.translation))
        return tuple(pairs)
