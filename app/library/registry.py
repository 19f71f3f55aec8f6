"""The library's small record of what the model files themselves cannot say.

A JSON file in the data folder: which Hub files llamadesk pulled (repo, revision, commit, and
whether llamadesk downloaded the bytes or found them already in the Hugging Face cache), which
folders the user added, and where files llamadesk made came from (the checkpoint a conversion
read, the file a quantization started from). JSON rather than SQLite: a few dozen records read
whole on every listing, and a user can read or fix it by hand.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llamadesk.app.core.atomic_file import atomic_output
from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.core.paths import data_dir

REGISTRY_FILE = "library.json"
SCHEMA_VERSION = 1


@dataclass
class PulledModel:
    """GGUF files pulled from the Hub; they live in huggingface-hub's cache, never copied."""

    name: str
    repo: str
    revision: str  # what the user asked for (a branch, tag or commit)
    commit: str  # the commit the files came from
    files: list[str]  # repo paths; split models list every part, first part first
    quantization: str | None
    downloaded: bool  # False when the files were already in the cache: then they are not ours to delete


@dataclass
class MadeModel:
    """A file llamadesk wrote into its models folder, and what it was made from."""

    path: str
    origin: dict[str, Any]  # e.g. {"checkpoint": "/path/to/hf-dir"} or {"quantized_from": "x.gguf"}


@dataclass
class Registry:
    pulled: list[PulledModel] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    made: list[MadeModel] = field(default_factory=list)

    def pulled_named(self, name: str) -> PulledModel | None:
        return next((p for p in self.pulled if p.name == name), None)

    def made_origin(self, path: Path) -> dict[str, Any] | None:
        return next((m.origin for m in self.made if Path(m.path) == path), None)


def registry_path() -> Path:
    return data_dir() / REGISTRY_FILE


def load_registry() -> Registry:
    """The registry as saved; an empty one if there is none yet."""
    path = registry_path()
    if not path.exists():
        return Registry()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return Registry(
            pulled=[PulledModel(**p) for p in raw.get("pulled", [])],
            folders=[str(f) for f in raw.get("folders", [])],
            made=[MadeModel(**m) for m in raw.get("made", [])],
        )
    except (ValueError, TypeError, AttributeError) as err:
        raise LlamadeskError(
            f"the library record {path} is damaged ({err}); fix or delete it (models stay on disk)"
        ) from err


def save_registry(registry: Registry) -> None:
    """Write the registry whole, atomically (a crash leaves the previous version)."""
    payload = {"schema_version": SCHEMA_VERSION, **asdict(registry)}
    with atomic_output(registry_path(), force=True) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def record_made_model(path: Path, origin: dict[str, Any]) -> None:
    """Remember where a file that convert/ or quantize/ wrote came from (shown by `models`)."""
    registry = load_registry()
    registry.made = [m for m in registry.made if Path(m.path) != path]
    registry.made.append(MadeModel(path=str(path), origin=origin))
    save_registry(registry)
