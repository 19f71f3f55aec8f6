"""Translation mode as a library: plain functions and typed events, no UI.

    translator = translator_for(Engine.load(path))   # prompt strategy from the GGUF's metadata
    job = TranslationJob(translator, text, JobSettings(target=resolve_language("fr")))
    for event in job.run():          # JobStarted, ChunkStarted, ChunkDone..., JobFinished
        ...                          # job.cancel() from any thread stops it (JobCancelled)

Modules: languages (names and codes), protection (spans kept untouched), markdown_links (links
checked after restoration), segmentation (pieces, sentences, packing), prompts (strategies per
kind of model), examples and nearest_examples (fixed few-shot pairs, and the corpus sentences
nearest a segment), candidates (choosing among a segment's candidate translations), segment (one
segment with checks, retry and fallback), unit_loop (the loop every job runs: resume, stream,
cancel, confidence), job (documents and lines), glossary, detection, resume (the sidecar),
generation (the engine as a translation model), source_text (bounded reading), file_job
(structured files unit by unit), confidence (a score per segment), and formats/ (gettext,
subtitles, html: a file into units and back).

    document = read_translatable("fr.po", data, resolve_language("fr"))   # formats/
    for event in FileJob(translator, document, JobSettings(...)).run(): ...  # same events
"""

from llamadesk.app.translate.events import (
    ChunkDone,
    ChunkStarted,
    ChunkText,
    JobCancelled,
    JobFinished,
    JobStarted,
    TranslationEvent,
)
from llamadesk.app.translate.generation import EngineGenerator, GenerationStopped, ModelGenerator
from llamadesk.app.translate.glossary import load_glossary, parse_glossary
from llamadesk.app.translate.job import JobSettings, TranslationJob
from llamadesk.app.translate.languages import Language, find_language, resolve_language
from llamadesk.app.translate.prompts import PromptStrategy, choose_strategy
from llamadesk.app.translate.resume import ResumeLog, existing_mode, model_identity, sidecar_path
from llamadesk.app.translate.segment import SegmentResult, SegmentTranslator, translator_for

__all__ = [
    "ChunkDone",
    "ChunkStarted",
    "ChunkText",
    "EngineGenerator",
    "GenerationStopped",
    "JobCancelled",
    "JobFinished",
    "JobSettings",
    "JobStarted",
    "Language",
    "ModelGenerator",
    "PromptStrategy",
    "ResumeLog",
    "model_identity",
    "SegmentResult",
    "SegmentTranslator",
    "TranslationEvent",
    "TranslationJob",
    "choose_strategy",
    "find_language",
    "load_glossary",
    "parse_glossary",
    "resolve_language",
    "sidecar_path",
    "existing_mode",
    "translator_for",
]
