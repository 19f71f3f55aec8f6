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
"""

from __future__ import annotations

import errno
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

from huggingface_hub import get_hf_file_metadata, hf_hub_url
from huggingface_hub.file_download import http_get
from huggingface_hub.utils import build_hf_headers, tqdm

from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import BadInputError, Interrupted, LlamadeskError
from llamadesk.app.core.gguf_naming import RepoFile
from llamadesk.app.hub.cache import blob_name, cached_file, inside, link_snapshot, remember_ref, repo_storage
from llamadesk.app.hub.errors import hub_errors
from llamadesk.app.hub.http_client import use_time_limits
from llamadesk.app.hub.repo import MAX_FILE_BYTES
from llamadesk.app.library.starters import sha256_of

PARTIAL_SUFFIX = ".llamadesk-partial"
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
    errno.EFBIG: "the file system of {folder} cannot hold a file as large as {name} (FAT32 stops at 4 GiB)",
}


def _disk_error(err: OSError, name: str, folder: Path) -> LlamadeskError:
    reason = DISK_ERRORS[err.errno].format(name=name, folder=folder)
    return LlamadeskError(
        f"{reason}; the partial download was removed; free some space (or set HF_HOME "
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
    blob = inside(repo_storage(repo), "blobs", blob_name(meta.etag))
    if blob.is_file():
        return blob, False
    blob.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(blob)
    size = meta.size if meta.size is not None else file.size
    try:
        with hub_errors(repo):
            _fetch_bytes(meta.location, _headers_for(url, meta.location), partial, size, file.path, progress)
    except KeyboardInterrupt:
        raise Interrupted(
            f"download of {file.path} stopped; run the same `llamadesk pull` again to resume where it stopped"
        ) from None
    except OSError as err:
        if err.errno in DISK_ERRORS:
            partial.unlink(missing_ok=True)
            raise _disk_error(err, file.path, blob.parent) from err
        # huggingface-hub's size check ("Consistency check failed"): the bytes cannot be trusted.
        partial.unlink(missing_ok=True)
        raise LlamadeskError(
            f"the download of {file.path} from {repo} came back incomplete ({err}); pull again"
        ) from err
    _verify(partial, file, repo)
    partial.replace(blob)
    return blob, True


def _verify(partial: Path, file: RepoFile, repo: str) -> None:
    if file.sha256 is None:
        return  # not an LFS file: the Hub publishes no sha256 to compare with (size was checked)
    print(f"checking the sha256 of {file.path}...", file=sys.stderr, flush=True)
    actual = sha256_of(partial)
    if actual != file.sha256.lower():
        partial.unlink(missing_ok=True)
        raise LlamadeskError(
            f"{file.path} from {repo} failed its checksum (got sha256 {actual[:12]}..., the Hub says "
            f"{file.sha256[:12]}...); the download was removed; pull again, and if it fails again "
            "the file on the Hub or a proxy on the way is damaged"
        )


def fetch_file(
    repo: str, file: RepoFile, commit: str, revision: str, progress: ProgressBar | None = None
) -> tuple[Path, bool]:
    """The snapshot path of `file` at `commit`, downloading and checking it first if needed.

    Returns (path, whether llamadesk downloaded the bytes). `progress` is a tqdm class for the
    progress bar (the terminal UI passes one that posts messages); None: huggingface-hub's own.
    """
    cached = cached_file(repo, file.path, commit)
    if cached is not None:
        remember_ref(repo, revision, commit)
        return cached, False
    blob, fetched = download_blob(repo, file, commit, progress)
    path = link_snapshot(repo, commit, file.path, blob)
    remember_ref(repo, revision, commit)
    return path, fetched
