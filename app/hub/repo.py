"""What a Hub repo holds, and which repos hold GGUF files: huggingface-hub's HfApi, read for llamadesk.

Plain functions (no printing) so the CLI and the terminal UI share them.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from huggingface_hub import HfApi, constants
from huggingface_hub.hf_api import ModelInfo
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, http_backoff, validate_repo_id

from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.core.gguf_naming import GGUFVariant, RepoFile, gguf_variants
from llamadesk.app.core.value_ranges import shown
from llamadesk.app.hub.cache import check_commit
from llamadesk.app.hub.errors import hub_errors
from llamadesk.app.hub.http_client import use_time_limits

# Files that make a repo a checkpoint llamadesk.convert can turn into a GGUF.
CHECKPOINT_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth")
CHECKPOINT_CONFIG = "config.json"
SEARCH_LIMIT = 20
# The largest model repos list a few thousand files; a listing far beyond that is not a repo.
MAX_LISTED_FILES = 100_000
# No model file is a petabyte; a size beyond this is a server that should not be trusted.
MAX_FILE_BYTES = 2**50
SHA256 = re.compile(r"[0-9a-f]{64}")
GIT_BLOB_ID = re.compile(r"[0-9a-f]{40}")
# A repo path longer than this cannot be made inside the cache (PATH_MAX is 4096 on Linux, and the
# cache's own folders come first); real repos stay far below it.
MAX_REPO_PATH_BYTES = 1024


@dataclass(frozen=True)
class ListedFile(RepoFile):
    """A RepoFile with the git blob id the listing gives, the only hash it has for a plain git file."""

    blob_id: str | None = None


def listed_hash(file: RepoFile) -> str | None:
    """The hash the listing gives for a file's bytes (LFS sha256, else git blob id), lowercase; None if none."""
    if file.sha256 is not None:
        return file.sha256.lower()
    blob_id = getattr(file, "blob_id", None)
    return blob_id.lower() if isinstance(blob_id, str) and GIT_BLOB_ID.fullmatch(blob_id.lower()) else None


@dataclass(frozen=True)
class PullRequest:
    """`REPO[:QUANT|:FILE]` taken apart."""

    repo: str
    choice: str | None  # a quantization (Q4_K_M) or a file name; None: choose for this machine


def parse_pull_spec(spec: str) -> PullRequest:
    """Split and validate `REPO[:QUANT|:FILE]`; raises BadInputError on a malformed id."""
    repo, _, choice = spec.strip().partition(":")
    with hub_errors(repo):
        validate_repo_id(repo)
    if choice == "" and spec.strip().endswith(":"):
        raise BadInputError(f"'{spec}' ends with ':'; add a quantization (e.g. {repo}:Q4_K_M) or leave it out")
    return PullRequest(repo=repo, choice=choice or None)


def is_safe_repo_path(path: str) -> bool:
    """Whether a file name from the server stays inside the folder it is joined to.

    huggingface-hub refuses unsafe names too when downloading; checking here as well means an
    unsafe name is never offered, chosen or shown as a model.
    """
    if not path or "\\" in path or path.startswith("/") or ":" in path.split("/", 1)[0]:
        return False
    # Control characters (a newline would split the one line an error is; C1 controls and bidi
    # overrides or zero-width characters make a name print as something else) and names no file
    # system takes (255 bytes a name on most, a path past what the cache can hold) are refused too.
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in path):
        return False
    if len(path.encode()) > MAX_REPO_PATH_BYTES or any(len(p.encode()) > 255 for p in path.split("/")):
        return False
    return ".." not in path.split("/") and posixpath.normpath(path) == path


def shown_name(value: object, limit: int = 60) -> str:
    """A name from a server for a message: as `shown` writes it, with the C1 controls, bidi
    overrides and zero-width characters JSON leaves as they are written as \\uXXXX (a U+202E
    would make the rest of the line read backwards)."""
    text = shown(value, limit)
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf") else c for c in text)


@dataclass(frozen=True)
class RepoListing:
    """A repo's files at one commit; unsafe names are kept apart, never offered."""

    repo: str
    commit: str
    files: tuple[RepoFile, ...]
    unsafe_names: tuple[str, ...]
    gated: bool

    @property
    def variants(self) -> list[GGUFVariant]:
        return gguf_variants(self.files)

    @property
    def checkpoint_files(self) -> list[str]:
        """Weights and config of an HF checkpoint, if the repo is one."""
        names = [f.path for f in self.files]
        weights = [n for n in names if n.endswith(CHECKPOINT_WEIGHT_SUFFIXES) and "/" not in n]
        return [*weights, CHECKPOINT_CONFIG] if weights and CHECKPOINT_CONFIG in names else []


def list_repo(repo: str, revision: str | None = None) -> RepoListing:
    """The files of `repo` at `revision` (default branch if None), with sizes and LFS sha256.

    The listing comes from a server: its commit must be a commit id, each size one a file can
    have and each sha256 a sha256, or nothing of it is used. File names that would leave the
    repo's folder are kept apart, never offered.
    """
    with hub_errors(repo):
        use_time_limits()
        info = HfApi().model_info(repo, revision=revision, files_metadata=True)
    if not info.sha:
        raise BadInputError(f"the Hub gave no commit for {repo}; try again later")
    commit = check_commit(info.sha, repo)
    siblings = info.siblings or []
    if len(siblings) > MAX_LISTED_FILES:
        raise BadInputError(f"the Hub lists {len(siblings)} files in {repo}, more than any model repo holds")
    safe, unsafe = [], []
    for sibling in siblings:
        name = sibling.rfilename
        if not isinstance(name, str) or not is_safe_repo_path(name):
            unsafe.append(name if isinstance(name, str) else f"(not a name: {shown(name)})")
            continue
        sha256 = sibling.lfs.sha256 if sibling.lfs is not None else None
        size = sibling.lfs.size if sibling.lfs is not None else sibling.size
        _check_listed(repo, name, size, sha256)
        blob_id = sibling.blob_id if isinstance(sibling.blob_id, str) else None
        safe.append(ListedFile(path=name, size=size, sha256=sha256, blob_id=blob_id))
    return RepoListing(repo=repo, commit=commit, files=tuple(safe), unsafe_names=tuple(unsafe), gated=bool(info.gated))


def _check_listed(repo: str, name: str, size: object, sha256: object) -> None:
    if size is not None and (type(size) is not int or not 0 <= size <= MAX_FILE_BYTES):
        raise BadInputError(f"the Hub lists {shown(name)} in {repo} with a size of {shown(size)}, which no file has")
    if sha256 is not None and not (isinstance(sha256, str) and SHA256.fullmatch(sha256.lower())):
        raise BadInputError(f"the Hub lists {shown(name)} in {repo} with {shown(sha256)} as its sha256, not a sha256")


@dataclass(frozen=True)
class HubModel:
    """One search result."""

    repo: str
    downloads: int
    likes: int
    updated: str | None  # ISO 8601
    gated: bool

    def to_json(self) -> dict:
        return {
            "repo": self.repo,
            "downloads": self.downloads,
            "likes": self.likes,
            "updated": self.updated,
            "gated": self.gated,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def search_gguf_models(query: str, limit: int = SEARCH_LIMIT) -> list[HubModel]:
    """Hub repos matching `query` that hold GGUF files, most downloaded first."""
    if not query.strip():
        raise BadInputError("give something to search for, e.g. `llamadesk search smollm2`")
    if limit < 1:
        raise BadInputError("--limit must be at least 1")
    if constants.is_offline_mode():
        raise LlamadeskError(
            "searching the Hub needs a connection and offline mode is on (HF_HUB_OFFLINE); "
            "`llamadesk models` lists what is downloaded"
        )
    with hub_errors(query):
        use_time_limits()
        found = _first_page_of_models(query.strip(), limit)
        return [
            HubModel(
                repo=m.id,
                downloads=_count(m.downloads),
                likes=_count(m.likes),
                updated=_iso(m.last_modified) if isinstance(m.last_modified, datetime) else None,
                gated=bool(m.gated),
            )
            for m in found
            if _is_repo_id(m.id)  # a result without a valid repo id is no result (and may be an escape)
        ][:limit]


def _first_page_of_models(query: str, limit: int) -> list[ModelInfo]:
    """The first page of the Hub's model search, which holds up to `limit` results.

    HfApi.list_models follows the answer's `Link: rel=next` for as long as the server sends one,
    and stops only after `limit` results: a server answering empty pages that link on held
    `search` forever. One page is all a search shows.
    """
    params = {
        "search": query,
        "filter": ["gguf"],
        "sort": "downloads",
        "limit": limit,
        "expand": ["downloads", "likes", "lastModified", "gated"],
    }
    response = http_backoff("GET", f"{constants.ENDPOINT}/api/models", params=params, headers=build_hf_headers())
    hf_raise_for_status(response)
    items = response.json()
    if not isinstance(items, list):
        raise TypeError(f"a search answer is a list, not {type(items).__name__}")
    return [ModelInfo(**{"siblings": None, **item}) for item in items]


def _is_repo_id(value: object) -> bool:
    """Whether a search result's id is one the Hub gives (which holds no escape or control character)."""
    if not isinstance(value, str):
        return False
    try:
        validate_repo_id(value)
    except ValueError:
        return False
    return True


def _count(value: object) -> int:
    """A count from the server as a number to show: anything else shows as 0."""
    return value if type(value) is int and value >= 0 else 0
