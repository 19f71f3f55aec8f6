"""What a Hub repo holds, and which repos hold GGUF files: huggingface-hub's HfApi, read for llamadesk.

Plain functions (no printing) so the CLI and the terminal UI share them.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from datetime import datetime

from huggingface_hub import HfApi, constants
from huggingface_hub.utils import validate_repo_id

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
    # Control characters (a newline would split the one line an error is) and names no file
    # system takes (255 bytes a name on most) are refused too.
    if any(ord(c) < 32 or ord(c) == 127 for c in path) or any(len(p.encode()) > 255 for p in path.split("/")):
        return False
    return ".." not in path.split("/") and posixpath.normpath(path) == path


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
        safe.append(RepoFile(path=name, size=size, sha256=sha256))
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
        found = HfApi().list_models(
            search=query.strip(),
            filter="gguf",
            sort="downloads",
            limit=limit,
            expand=["downloads", "likes", "lastModified", "gated"],
        )
        return [
            HubModel(
                repo=m.id,
                downloads=_count(m.downloads),
                likes=_count(m.likes),
                updated=_iso(m.last_modified) if isinstance(m.last_modified, datetime) else None,
                gated=bool(m.gated),
            )
            for m in found
            if isinstance(m.id, str)  # a result without a repo id is no result
        ][:limit]


def _count(value: object) -> int:
    """A count from the server as a number to show: anything else shows as 0."""
    return value if type(value) is int and value >= 0 else 0
