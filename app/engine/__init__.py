"""The engine package: the only code in llamadesk that imports llama_cpp.

Import the value types from `.types` freely (they are plain dataclasses); importing `Engine` or
`build_info` loads llama.cpp, so do it where a model is actually needed.
"""

from llamadesk.app.engine.types import (
    ActiveSettings,
    BenchResult,
    ChatMessage,
    GenerationDone,
    GenerationStats,
    LoadSettings,
    Sampling,
    StreamEvent,
    TextPiece,
)

__all__ = [
    "ActiveSettings",
    "BenchResult",
    "ChatMessage",
    "GenerationDone",
    "GenerationStats",
    "LoadSettings",
    "Sampling",
    "StreamEvent",
    "TextPiece",
]
