"""Downloading one Hub file into huggingface-hub's cache: resumable, checked, never half-visible.

huggingface-hub's hf_hub_download already resumes when the connection drops mid-file, but it
writes to a name unique to each process and deletes it on any failure, so a download stopped by
Ctrl-C, a closed laptop or a crash starts again from zero; and it does not compare a plain-HTTP
download with the sha256 the Hub publishes. For multi-gigabyte models both matter, so the bytes
are fetched here, with huggingface-hub's own http_get (Range requests, retries, progress bar), to
a partial file with a stable name beside the blob. Only a file whose sha256 matches the Hub's is
renamed to the blob name and linked into the snapshot, so the cache layout stays huggingface-hub's
own. What the server says is never a path: the blob's name comes from its ETag only when that is
a hash (cache.blob_name), and its size must be one a file can have.

The blob is named by the hash the listing gives (the LFS sha256, or the git blob id of a plain
file), which is what the Hub's ETag is too: an existing blob of that name is that file. Naming it
by the ETag alone let a proxy that sends one ETag for two files install one file as the other.
Two pulls of one file at once take turns on a lock beside the blob; the second finds it done.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from huggingface_hub import get_hf_file_metadata, hf_hub_url
from huggingface_hub.file_download import http_get
from huggingface_hub.utils import build_hf_headers, tqdm

from llamadesk.app.core.atomic_file import locked
from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import BadInputError, Interrupted, LlamadeskError
from llamadesk.app.core.gguf_naming import RepoFile
from llamadesk.app.hub.cache import (
    CACHE_REFUSED,
    blob_name,
    cache_root,
    cached_file,
    inside,
    link_snapshot,
    mark_downloaded,
    remember_ref,
    repo_storage,
)
from llamadesk.app.hub.errors import hub_errors
from llamadesk.app.hub.http_client import use_time_limits
from llamadesk.app.hub.repo import MAX_FILE_BYTES, listed_hash
from llamadesk.app.hub.unfinished import PARTIAL_SUFFIX
from llamadesk.app.library.starters import sha256_of

ProgressBar = type[tqdm]


def partial_path(blob: Path) -> Path:
    """Where the bytes of `blob` collect until they are complete and checked."""
    return blob.with_name(blob.name + PARTIAL_SUFFIX)


def _check_free_space(folder: Path, needed: int, name: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise LlamadeskError(
            f"not enough disk space for {name}: it needs {format_bytes(needed)} more and "
            f"{folder} has {format_bytes(free)} free; free some space and pull again"
        )


# Write errors that mean "this disk cannot take the file", and what to tell the user.
DISK_ERRORS = {
    errno.ENOSPC: "the disk filled up while downloading {name} into {folder}",
    errno.EDQUOT: "your disk quota ran out while downloading {name} into {folder}",
    # Not only a file system's limit: `ulimit -f` gives the same error on any disk.
    errno.EFBIG: (
        "{name} grew past the largest file this process may write (`ulimit -f`) or the file system of "
        "{folder} holds (FAT32 stops at 4 GiB)"
    ),
}


@contextlib.contextmanager
def cache_writable() -> Iterator[None]:
    """Inside this block, a cache folder that refuses a write is one line saying what to do: the
    bare error named one file in it, and a partial download it refused read as a short download
    ("came back with 0 bytes ...; pull again", which never helps)."""
    try:
        yield
    except OSError as err:
        if err.errno not in CACHE_REFUSED:
            raise
        where = f": {err.filename}" if err.filename else ""
        raise LlamadeskError(
            f"the Hugging Face cache {cache_root()} cannot be written ({err.strerror}{where}); "
            "make it writable (or set HF_HOME to another folder) and pull again"
        ) from None


def _disk_error(err: OSError, name: str, folder: Path) -> LlamadeskError:
    reason = DISK_ERRORS[err.errno].format(name=name, folder=folder)
    remedy = "raise the limit" if err.errno == errno.EFBIG else "free some space"
    return LlamadeskError(
        f"{reason}; the partial download was removed; {remedy} (or set HF_HOME "
        "to a folder on another disk) and pull again"
    )


def _headers_for(url: str, location: str) -> dict[str, str]:
    """The Hub's headers with the user's token (HF_TOKEN or `hf auth login`), which must not
    leave the Hub: a file served from a CDN (a signed URL) gets no Authorization header."""
    headers = build_hf_headers()
    if urlsplit(location).netloc != urlsplit(url).netloc:
        headers.pop("authorization", None)
    return headers


def _fetch_bytes(
    url: str, headers: dict[str, str], partial: Path, size: int | None, name: str, progress: ProgressBar | None
) -> None:
    """Append the rest of `url` to `partial` (Range from its current size)."""
    resume = partial.stat().st_size if partial.exists() else 0
    if size is not None and resume > size:  # not a prefix of this file: start over
        partial.unlink()
        resume = 0
    if size is not None:
        _check_free_space(partial.parent, size - resume, name)
    with partial.open("r+b" if resume else "wb") as out:
        out.seek(resume)
        http_get(
            url,
            out,
            resume_size=resume,
            headers=headers,
            expected_size=size,
            displayed_filename=name,
            tqdm_class=progress,
        )


def download_blob(repo: str, file: RepoFile, commit: str, progress: ProgressBar | None = None) -> tuple[Path, bool]:
    """Make sure the blob of `file` at `commit` is in the cache, checked; returns (the blob, whether
    bytes were fetched)."""
    url = hf_hub_url(repo, file.path, revision=commit)
    with hub_errors(repo):
        use_time_limits()
        meta = get_hf_file_metadata(url)
    if not meta.etag:
        raise LlamadeskError(f"the Hub gave no ETag for {file.path} in {repo}; try again later")
    if meta.size is not None and not 0 <= meta.size <= MAX_FILE_BYTES:
        raise BadInputError(
            f"the Hub gave {meta.size} bytes as the size of {file.path} in {repo}, which no model file has"
        )
    blob = inside(repo_storage(repo), "blobs", listed_hash(file) or blob_name(meta.etag))
    blob.parent.mkdir(parents=True, exist_ok=True)
    with locked(_lock_place(repo, blob)):
        if blob.is_file():  # already here, or another pull of the same file finished it meanwhile
            return blob, False
        size = meta.size if meta.size is not None else file.size
        partial = partial_path(blob)
        _download_checked(repo, file, meta.location, _headers_for(url, meta.location), partial, size, progress)
        mark_downloaded(blob)  # first: a crash between the two must not leave our blob unmarked
        partial.replace(blob)
    return blob, True


def _lock_place(repo: str, blob: Path) -> Path:
    """Where the lock on a blob's download lives: huggingface-hub's own `.locks/` folder, so that
    blobs/ holds only blobs (and their partials)."""
    folder = cache_root() / ".locks" / repo_storage(repo).name
    folder.mkdir(parents=True, exist_ok=True)
    return folder / blob.name


def _download_checked(
    repo: str,
    file: RepoFile,
    location: str,
    headers: dict[str, str],
    partial: Path,
    size: int | None,
    progress: ProgressBar | None,
) -> None:
    """Fetch the rest of `file` into `partial` and check it; failures are one line each."""
    try:
        with hub_errors(repo):
            _fetch_bytes(location, headers, partial, size, file.path, progress)
    except KeyboardInterrupt as stop:
        stopped = Interrupted(
            f"download of {file.path} stopped; run the same `llamadesk pull` again to resume where it stopped"
        )
        signum = getattr(stop, "signum", None)  # SIGTERM, SIGHUP: exit 143, 129 as documented
        if signum is not None:
            stopped.exit_code = 128 + signum
        raise stopped from None
    except OSError as err:
        if err.errno in DISK_ERRORS:
            partial.unlink(missing_ok=True)
            raise _disk_error(err, file.path, partial.parent) from err
        if err.errno in CACHE_REFUSED:
            raise  # the partial could not be written at all: cache_writable says so
        # huggingface-hub's size check ("Consistency check failed"): the bytes cannot be trusted.
        got = partial.stat().st_size if partial.exists() else 0
        partial.unlink(missing_ok=True)
        expected = f" where the Hub announced {size}" if size is not None else ""
        raise LlamadeskError(
            f"the download of {file.path} from {repo} came back with {got} bytes{expected}; "
            "the partial download was removed; pull again"
        ) from err
    _verify(partial, file, repo)


def _verify(partial: Path, file: RepoFile, repo: str) -> None:
    """The bytes must hash to what the listing says: the sha256 of an LFS file, the git blob id of
    a plain one (a file stored in git, such as a checkpoint's tokenizer.json)."""
    if file.sha256 is not None:
        print(f"checking the sha256 of {file.path}...", file=sys.stderr, flush=True)
        actual, expected = sha256_of(partial), file.sha256.lower()
    elif (blob_id := listed_hash(file)) is not None:
        actual, expected = git_blob_id(partial), blob_id
    else:
        return  # the listing gave no hash at all (size was checked)
    if actual != expected:
        partial.unlink(missing_ok=True)
        raise LlamadeskError(
            f"{file.path} from {repo} failed its checksum (got {actual[:12]}..., the Hub says "
            f"{expected[:12]}...); the download was removed; pull again, and if it fails again "
            "the file on the Hub or a proxy on the way is damaged"
        )


def git_blob_id(path: Path) -> str:
    """The id git gives a file's bytes: sha1 of `blob SIZE\\0` and the bytes (what the Hub lists)."""
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_file(
    repo: str, file: RepoFile, commit: str, revision: str, progress: ProgressBar | None = None
) -> tuple[Path, bool]:
    """The snapshot path of `file` at `commit`, downloading and checking it first if needed.

    Returns (path, whether llamadesk downloaded the bytes). `progress` is a tqdm class for the
    progress bar (the terminal UI passes one that posts messages); None: huggingface-hub's own.
    """
    with cache_writable():
        cached = cached_file(repo, file.path, commit)
        if cached is not None:
            remember_ref(repo, revision, commit)
            return cached, False
        blob, fetched = download_blob(repo, file, commit, progress)
        path = link_snapshot(repo, commit, file.path, blob)
        remember_ref(repo, revision, commit)
        return path, fetched
