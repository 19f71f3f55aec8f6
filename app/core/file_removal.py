"""Deleting a model's files all or none where a folder refuses (`models rm`).

A model is several files (a pulled model's snapshot link and its blob; a made GGUF's split parts
and its saved evaluations). Each folder is checked before any file goes, so a read-only one (or
another user's) is named in one line with nothing removed, and the model stays whole and usable,
its library record with it. A bare "Permission denied" said neither which folder nor what to do,
and halfway through it left a model that could neither run nor be removed again.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

from llamadesk.app.core.errors import LlamadeskError

# Errors that mean a folder is not ours to change: another user's, or on a read-only mount.
FOLDER_REFUSED = {errno.EACCES, errno.EPERM, errno.EROFS}


def undeletable(path: Path, folder_is: str, removed: list[Path] | None = None) -> LlamadeskError:
    """The one line for a file whose folder refuses its deletion; `folder_is` says what such a
    folder probably is ("read-only, or another user's")."""
    done = f"{len(removed)} file(s) before it were removed" if removed else "nothing was removed"
    return LlamadeskError(
        f"{path} cannot be deleted: folder {path.parent} is not writable ({folder_is}); {done}: "
        "make it writable, or remove the model as the user who owns it"
    )


def refuse_undeletable(path: Path, folder_is: str) -> None:
    """LlamadeskError unless `path` may be deleted: its folder must be writable and searchable."""
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise undeletable(path, folder_is)


def delete_file(path: Path, removed: list[Path], folder_is: str) -> None:
    """Delete `path` and add it to `removed`; a folder that refuses is one line all the same,
    where os.access did not see it coming (root without its override, a mount changed meanwhile)."""
    try:
        path.unlink()
    except FileNotFoundError:  # gone meanwhile (another `models rm`): nothing left to do
        return
    except OSError as err:
        if err.errno in FOLDER_REFUSED:
            raise undeletable(path, folder_is, removed) from None
        raise
    removed.append(path)


def delete_files(paths: Iterable[Path], folder_is: str) -> list[Path]:
    """Delete every one of `paths` (those already gone are skipped), after checking that each
    folder allows it; returns what was removed."""
    present = [p for p in paths if p.is_symlink() or p.exists()]
    for path in present:
        refuse_undeletable(path, folder_is)
    removed: list[Path] = []
    for path in present:
        delete_file(path, removed, folder_is)
    return removed
