"""Downloads that a stopped pull left in the Hugging Face cache, to tell the user about.

A pull keeps its partial file (`blobs/<hash>.llamadesk-partial`) so the same pull resumes it; one
given up on kept gigabytes in a hidden cache folder that no command showed. `llamadesk models`
names them (it does not delete them: the same pull would resume them). Only huggingface-hub's
constants are imported here: listing the library must stay quick.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants

PARTIAL_SUFFIX = ".llamadesk-partial"


@dataclass(frozen=True)
class UnfinishedDownloads:
    folder: Path  # the cache folder they are in
    repos: tuple[str, ...]  # OWNER/NAME of each repo with one
    size: int  # bytes in all


def unfinished_downloads() -> UnfinishedDownloads | None:
    """The partial downloads in the cache now, or None when there are none."""
    root = Path(constants.HF_HUB_CACHE).expanduser()
    repos, size = set(), 0
    for partial in root.glob(f"models--*/blobs/*{PARTIAL_SUFFIX}"):
        try:
            size += partial.stat().st_size
        except OSError:  # finished or removed meanwhile
            continue
        repos.add(partial.parent.parent.name.removeprefix("models--").replace("--", "/", 1))
    return UnfinishedDownloads(root, tuple(sorted(repos)), size) if repos else None
