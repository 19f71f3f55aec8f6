"""Which files of a folder are models to list: shared by added folders and LM Studio's folder."""

from __future__ import annotations

from pathlib import Path

from llamadesk.app.core.gguf_naming import SPLIT_PART


def is_listable_gguf(path: Path) -> bool:
    """A model's (first) file: no hidden or partial file, no later split part, no vision projector."""
    name = path.name
    if name.startswith(".") or name.lower().startswith("mmproj") or not name.lower().endswith(".gguf"):
        return False
    match = SPLIT_PART.match(name)
    return not (match and int(match["index"]) != 1)


def listable_ggufs(folder: Path, recursive: bool) -> list[Path]:
    """GGUFs a folder holds, one entry per model, sorted."""
    found = folder.rglob("*.gguf") if recursive else folder.glob("*.gguf")
    return [path for path in sorted(found) if is_listable_gguf(path) and path.is_file()]
