"""The local model library: everything llamadesk can run, and how `-m NAME` finds a file.

For now it holds the starter models and every GGUF in the data folder's models/ (where convert,
quantize and pull put theirs). A `-m` argument is a path to a GGUF, a starter name, or the name
of a library model (its file name without .gguf).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import BadInputError, LlamadeskError
from .gguf_file import inspect_gguf
from .paths import models_dir
from .starter_models import GEMMA_FILE, STARTER_MODELS, starter_path


@dataclass(frozen=True)
class LibraryEntry:
    """One runnable model with what a user needs to choose it."""

    name: str
    path: str
    source: str  # "starter" or "local"
    architecture: str
    parameters: int
    size_label: str
    quantization: str
    file_size: int
    context_length: int
    has_chat_template: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _entry(name: str, path: Path, source: str) -> LibraryEntry:
    summary = inspect_gguf(path)
    return LibraryEntry(
        name=name,
        path=str(path),
        source=source,
        architecture=summary.architecture,
        parameters=summary.parameters,
        size_label=summary.size_label,
        quantization=summary.quantization,
        file_size=summary.file_size,
        context_length=summary.context_length,
        has_chat_template=summary.has_chat_template,
    )


def _local_files() -> dict[str, Path]:
    """GGUFs in the models folder by name; the assembled starter belongs to its starter entry."""
    return {p.stem: p for p in sorted(models_dir().glob("*.gguf")) if p.name != GEMMA_FILE}


def list_models() -> list[LibraryEntry]:
    """Every model in the library; one that cannot be read is skipped rather than hiding the rest."""
    entries = []
    candidates = [(name, None, "starter") for name in STARTER_MODELS]
    candidates += [(name, path, "local") for name, path in _local_files().items()]
    for name, path, source in candidates:
        try:
            entries.append(_entry(name, path or starter_path(name), source))
        except LlamadeskError:
            continue
    return entries


def looks_like_path(spec: str) -> bool:
    return spec.endswith(".gguf") or "/" in spec or "\\" in spec or spec.startswith(".")


def resolve_model(spec: str) -> Path:
    """The GGUF file `-m spec` means; raises BadInputError naming what is available otherwise."""
    if spec in STARTER_MODELS:
        return starter_path(spec)
    local = _local_files()
    if spec in local:
        return local[spec]
    path = Path(spec).expanduser()
    if looks_like_path(spec) or path.exists():
        if not path.exists():
            raise BadInputError(f"{spec}: no such file; give a path to a .gguf file or a model name")
        return path
    known = ", ".join([*STARTER_MODELS, *local])
    raise BadInputError(f"unknown model '{spec}'; available: {known} (or give a path to a .gguf file)")
