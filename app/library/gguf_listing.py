"""Which files of a folder are models to list: shared by added folders and LM Studio's folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
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
    found = _ggufs_below(folder) if recursive else folder.glob("*.gguf")
    return [path for path in sorted(found) if is_listable_gguf(path) and path.is_file()]


def _ggufs_below(folder: Path) -> Iterator[Path]:
    """Every `*.gguf` in and below `folder`, links to folders not followed (as rglob).

    rglob let the error through when a subfolder vanished while it was walked (a browser's or a
    build's temporary folder in ~/Downloads), and `models` failed; such a folder holds no model
    any more, and one that cannot be read holds none llamadesk can use, so both are passed over.
    """
    for root, _, files in os.walk(folder, onerror=lambda _err: None):
        yield from (Path(root) / name for name in files if name.endswith(".gguf"))
