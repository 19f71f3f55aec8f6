"""Reading and pruning huggingface-hub's cache, where pulled models live (never copied).

The layout is huggingface-hub's: `models--OWNER--NAME/{blobs,snapshots/COMMIT,refs/REVISION}`;
each snapshot file is a link to a blob named by its ETag (the sha256 for LFS files).

Every name in those paths comes from a server or a file (an ETag, a commit, a file name, a
revision), so every path is built through `inside`, which refuses one that would leave the repo's
folder: huggingface-hub itself writes `blobs/<ETag>` wherever a hostile ETag with `../` points.

A blob llamadesk downloaded and checked gets a mark beside it (`blobs/<hash>.llamadesk-downloaded`):
whether `models rm` may delete a pulled model's files is what the cache says, not what one run of
`pull` happened to transfer (a pull resumed after Ctrl-C moves only the last part's bytes).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import uuid
from pathlib import Path

from huggingface_hub import constants, try_to_load_from_cache
from huggingface_hub.file_download import repo_folder_name

from llamadesk.app.core.atomic_file import UnwritableFolder, atomic_output
from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.core.file_removal import FOLDER_REFUSED, delete_file, refuse_undeletable
from llamadesk.app.core.gguf_naming import RepoFile
from llamadesk.app.core.value_ranges import shown
from llamadesk.app.library.registry import is_revision

COMMIT_ID = re.compile(r"[0-9a-f]{40}")
DOWNLOADED_MARK = ".llamadesk-downloaded"
# Why os.symlink may fail where a copy works (no symlinks on this file system or for this user);
# anything else (a name too long, a full disk) fails the copy the same way and is reported as it is.
NO_SYMLINKS = {errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
# Write errors that mean the cache is not ours to write: another user's, or on a read-only mount.
CACHE_REFUSED = FOLDER_REFUSED
# What a cache folder that refuses a deletion probably is, in `models rm`'s one line.
CACHE_FOLDER_IS = "a read-only Hugging Face cache, or another user's"
CACHE_NOT_WRITABLE = UnwritableFolder("make it writable (or set HF_HOME to another folder)", LlamadeskError)
# What the Hub sends as an ETag: a git blob's sha1 (plain files) or the sha256 (LFS files).
HASH_ETAG = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def cache_root() -> Path:
    """The cache folder huggingface-hub uses now (HF_HUB_CACHE / HF_HOME honoured)."""
    return Path(constants.HF_HUB_CACHE).expanduser()


def repo_storage(repo: str) -> Path:
    return cache_root() / repo_folder_name(repo_id=repo, repo_type="model")


def inside(folder: Path, *parts: str) -> Path:
    """`folder / parts...`, refused unless it stays inside `folder` (no `..`, absolute part or link out)."""
    path = folder.joinpath(*parts)
    if not path.resolve().is_relative_to(folder.resolve()):
        raise BadInputError(
            f"{shown('/'.join(parts), 80)} would lead outside {folder}; llamadesk does not write or read there"
        )
    return path


def check_commit(commit: object, repo: str) -> str:
    """A commit id as the Hub writes them (40 hex digits); anything else is refused in one line."""
    if not isinstance(commit, str) or not COMMIT_ID.fullmatch(commit):
        raise BadInputError(
            f"the Hub gave {shown(commit)} as the commit of {repo}, which is not a commit id; "
            "llamadesk uses nothing from that answer (is HF_ENDPOINT a Hub?)"
        )
    return commit


def check_revision(revision: str) -> str:
    """A branch, tag or commit name that can name a file under refs/ (branches may hold '/')."""
    if not is_revision(revision):
        raise BadInputError(f"{shown(revision)} is not a branch, tag or commit name")
    return revision


def blob_name(etag: str) -> str:
    """The blob's file name for an ETag: the ETag itself when it is a hash, as huggingface-hub names
    it; else the sha256 of the ETag, so that what a server sends never becomes a path."""
    if HASH_ETAG.fullmatch(etag):
        return etag
    return hashlib.sha256(etag.encode("utf-8", "surrogateescape")).hexdigest()


def cached_file(repo: str, path: str, commit: str) -> Path | None:
    """The snapshot path of a cached repo file at a commit, if it is there."""
    inside(repo_storage(repo), "snapshots", check_commit(commit, repo), path)
    found = try_to_load_from_cache(repo, path, revision=commit)
    return Path(found) if isinstance(found, str) else None


def cached_commit(repo: str, revision: str) -> str | None:
    """The commit a branch or tag pointed to when last seen online (refs/), or None."""
    storage = repo_storage(repo)
    ref = inside(storage, "refs", check_revision(revision))
    if ref.is_file():
        # Written by us or by huggingface-hub, but a file all the same: a commit id or nothing.
        commit = ref.read_bytes()[:100].decode("ascii", "replace").strip()
        return commit if COMMIT_ID.fullmatch(commit) else None
    if COMMIT_ID.fullmatch(revision) and inside(storage, "snapshots", revision).is_dir():
        return revision
    return None


def remember_ref(repo: str, revision: str, commit: str) -> None:
    """Point refs/REVISION at COMMIT, as huggingface-hub does after a download by branch name.

    We download by commit (so every part of a model comes from the same commit), which leaves the
    ref unwritten; writing it lets offline mode find the files by branch name too.
    """
    if revision == commit or cached_commit(repo, revision) == commit:
        return  # nothing to write: a pull of what a read-only cache holds needs no change to it
    ref = inside(repo_storage(repo), "refs", check_revision(revision))
    ref.parent.mkdir(parents=True, exist_ok=True)
    # Whole or not at all: written in place, a full disk (a model just filled it) left the ref
    # empty, and offline pulls of every file of that branch found nothing in the cache.
    commit = check_commit(commit, repo)
    with atomic_output(ref, force=True, unwritable=CACHE_NOT_WRITABLE) as tmp:
        tmp.write_text(commit)


def link_snapshot(repo: str, commit: str, path: str, blob: Path) -> Path:
    """Make `snapshots/COMMIT/PATH` point at `blob`, as huggingface-hub lays its cache out.

    Done here rather than by hf_hub_download, which would ask the server for the ETag again and
    build the blob's path from whatever it answers the second time.
    """
    storage = repo_storage(repo)
    pointer = inside(storage, "snapshots", check_commit(commit, repo), path)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    # A short name of its own: the file's name plus a suffix would not fit where the name itself
    # is near the 255-byte limit, and two pulls at once must not share it.
    link = pointer.with_name(f".llamadesk-link-{uuid.uuid4().hex[:12]}")
    try:
        try:
            os.symlink(os.path.relpath(blob, pointer.parent), link)
        except OSError as err:  # no symlinks here (Windows without developer mode): a copy, as huggingface-hub does
            if err.errno not in NO_SYMLINKS:
                raise
            shutil.copyfile(blob, link)
        os.replace(link, pointer)
    except BaseException:
        # A copy cut short by a full disk is as large as the disk had room for, under a name no
        # later pull would ever look for again.
        with contextlib.suppress(OSError):
            os.unlink(link)
        raise
    return pointer


def downloaded_mark(blob: Path) -> Path:
    return blob.with_name(blob.name + DOWNLOADED_MARK)


def mark_downloaded(blob: Path) -> None:
    """Record that llamadesk downloaded and checked this blob (so `models rm` may delete it)."""
    downloaded_mark(blob).touch()


def downloaded_by_llamadesk(snapshot_file: Path) -> bool:
    """Whether the blob behind a snapshot file is one llamadesk downloaded (see the module docstring)."""
    blob = snapshot_file.resolve()
    return blob.is_file() and downloaded_mark(blob).is_file()


def cached_repo_files(repo: str, commit: str) -> list[RepoFile]:
    """The files of a commit that are in the cache (sizes from the blobs; no hashes)."""
    snapshot = inside(repo_storage(repo), "snapshots", check_commit(commit, repo))
    if not snapshot.is_dir():
        return []
    files = []
    for path in sorted(snapshot.rglob("*")):
        if path.is_file():
            files.append(RepoFile(path=path.relative_to(snapshot).as_posix(), size=path.stat().st_size))
    return files


def _links_to(storage: Path, blob: Path) -> list[Path]:
    snapshots = storage.resolve() / "snapshots"
    if not snapshots.is_dir():
        return []
    return [p for p in snapshots.rglob("*") if p.is_symlink() and p.resolve() == blob]


def remove_cached_files(repo: str, commit: str, paths: list[str]) -> list[Path]:
    """Delete these files of one commit from the cache; return what was removed.

    Not huggingface-hub's delete_revisions: it removes a whole revision, which would also take
    other quantizations of the same commit that the user pulled separately. A blob is removed
    only when no other snapshot still links to it. A folder that would refuse a deletion (a
    read-only cache, another user's) is found before anything goes: LlamadeskError, nothing removed.
    """
    storage = repo_storage(repo)
    # Resolved, as the blob is: a cache reached through a link (~/.cache on another disk) must
    # still count its own blobs as inside it.
    real_storage = storage.resolve()
    pointers = []
    for path in paths:
        pointer = inside(storage, "snapshots", check_commit(commit, repo), path)
        if pointer.is_symlink() or pointer.exists():
            pointers.append(pointer)
    # A link removed and its blob refused left a model that could neither run nor be removed again.
    leaving = {_as_link(p) for p in pointers}
    for pointer in pointers:
        refuse_undeletable(pointer, CACHE_FOLDER_IS)
        blob = pointer.resolve()
        if blob.is_file() and blob.is_relative_to(real_storage) and set(_links_to(storage, blob)) <= leaving:
            refuse_undeletable(blob, CACHE_FOLDER_IS)
    removed: list[Path] = []
    for pointer in pointers:
        blob = pointer.resolve()
        delete_file(pointer, removed, CACHE_FOLDER_IS)
        if blob.is_file() and blob.is_relative_to(real_storage) and not _links_to(storage, blob):
            delete_file(blob, removed, CACHE_FOLDER_IS)
            downloaded_mark(blob).unlink(missing_ok=True)
    _remove_empty_folders(storage / "snapshots" / commit, stop=storage)
    return removed


def _as_link(path: Path) -> Path:
    """A link's own path with its folder resolved, as _links_to finds it."""
    return path.parent.resolve() / path.name


def _remove_empty_folders(folder: Path, stop: Path) -> None:
    while folder != stop and folder.is_dir() and not any(folder.iterdir()):
        try:
            os.rmdir(folder)
        except OSError:  # an empty folder left (snapshots/ read-only) harms nothing; the files are gone
            return
        folder = folder.parent
