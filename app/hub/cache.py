"""Reading and pruning huggingface-hub's cache, where pulled models live (never copied).

The layout is huggingface-hub's: `models--OWNER--NAME/{blobs,snapshots/COMMIT,refs/REVISION}`;
each snapshot file is a link to a blob named by its ETag (the sha256 for LFS files).
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import constants, try_to_load_from_cache
from huggingface_hub.file_download import repo_folder_name

from llamadesk.app.core.gguf_naming import RepoFile


def cache_root() -> Path:
    """The cache folder huggingface-hub uses now (HF_HUB_CACHE / HF_HOME honoured)."""
    return Path(constants.HF_HUB_CACHE).expanduser()


def repo_storage(repo: str) -> Path:
    return cache_root() / repo_folder_name(repo_id=repo, repo_type="model")


def cached_file(repo: str, path: str, commit: str) -> Path | None:
    """The snapshot path of a cached repo file at a commit, if it is there."""
    found = try_to_load_from_cache(repo, path, revision=commit)
    return Path(found) if isinstance(found, str) else None


def cached_commit(repo: str, revision: str) -> str | None:
    """The commit a branch or tag pointed to when last seen online (refs/), or None."""
    ref = repo_storage(repo) / "refs" / revision
    if ref.is_file():
        return ref.read_text().strip() or None
    snapshot = repo_storage(repo) / "snapshots" / revision
    return revision if snapshot.is_dir() else None


def remember_ref(repo: str, revision: str, commit: str) -> None:
    """Point refs/REVISION at COMMIT, as huggingface-hub does after a download by branch name.

    We download by commit (so every part of a model comes from the same commit), which leaves the
    ref unwritten; writing it lets offline mode find the files by branch name too.
    """
    if revision == commit:
        return
    ref = repo_storage(repo) / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit)


def cached_repo_files(repo: str, commit: str) -> list[RepoFile]:
    """The files of a commit that are in the cache (sizes from the blobs; no hashes)."""
    snapshot = repo_storage(repo) / "snapshots" / commit
    if not snapshot.is_dir():
        return []
    files = []
    for path in sorted(snapshot.rglob("*")):
        if path.is_file():
            files.append(RepoFile(path=path.relative_to(snapshot).as_posix(), size=path.stat().st_size))
    return files


def _links_to(storage: Path, blob: Path) -> list[Path]:
    snapshots = storage / "snapshots"
    if not snapshots.is_dir():
        return []
    return [p for p in snapshots.rglob("*") if p.is_symlink() and p.resolve() == blob]


def remove_cached_files(repo: str, commit: str, paths: list[str]) -> list[Path]:
    """Delete these files of one commit from the cache; return what was removed.

    Not huggingface-hub's delete_revisions: it removes a whole revision, which would also take
    other quantizations of the same commit that the user pulled separately. A blob is removed
    only when no other snapshot still links to it.
    """
    storage = repo_storage(repo)
    removed: list[Path] = []
    for path in paths:
        pointer = storage / "snapshots" / commit / path
        if not pointer.is_symlink() and not pointer.exists():
            continue
        blob = pointer.resolve()
        pointer.unlink()
        removed.append(pointer)
        if blob.is_file() and blob.is_relative_to(storage) and not _links_to(storage, blob):
            blob.unlink()
            removed.append(blob)
    _remove_empty_folders(storage / "snapshots" / commit, stop=storage)
    return removed


def _remove_empty_folders(folder: Path, stop: Path) -> None:
    while folder != stop and folder.is_dir() and not any(folder.iterdir()):
        os.rmdir(folder)
        folder = folder.parent
