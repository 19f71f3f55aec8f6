"""The typed progress events a translation job emits, for the CLI's progress line and the UI."""

from __future__ import annotations

from dataclasses import dataclass

from llamadesk.app.translate.languages import Language
from llamadesk.app.translate.segment import SegmentResult


@dataclass(frozen=True)
class JobStarted:
    """The work is known: how many chunks, how many already done by an earlier run."""

    total: int
    resumed: int
    source: Language
    target: Language
    detected_confidence: float | None  # set when the source language was detected
    strategy: str


@dataclass(frozen=True)
class ChunkStarted:
    index: int
    total: int
    source: str


@dataclass(frozen=True)
class ChunkText:
    """A piece of the model's output for chunk `index` as it streams (markers not restored)."""

    index: int
    text: str


@dataclass(frozen=True)
class ChunkDone:
    index: int
    total: int
    result: SegmentResult


@dataclass(frozen=True)
class JobFinished:
    """Everything is translated; `text` is the whole output with the input's structure."""

    text: str
    results: tuple[SegmentResult, ...]
    seconds: float


@dataclass(frozen=True)
class JobCancelled:
    """Stopped on request; `done` chunks are kept in the resume sidecar (if there is one)."""

    done: int
    total: int


TranslationEvent = JobStarted | ChunkStarted | ChunkText | ChunkDone | JobFinished | JobCancelled
