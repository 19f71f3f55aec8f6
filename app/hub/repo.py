"""What a Hub repo holds, and which repos hold GGUF files: huggingface-hub's HfApi, read for llamadesk.

Plain functions (no printing) so the CLI and the terminal UI share them.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import datetime

from huggingface_hub import HfApi, constants
from huggingface_hub.utils import validate_repo_id

from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.core.gguf_naming import GGUFVariant, RepoFile, gguf_variants
from llamadesk.app.hub.errors import hub_errors

# Files that make a repo a checkpoint llamadesk.convert can turn into a GGUF.
CHECKPOINT_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth")
CHECKPOINT_CONFIG = "config.json"
SEARCH_LIMIT = 20


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
    if not path or "\\" in path or "\x00" in path or path.startswith("/") or ":" in path.split("/", 1)[0]:
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
    """The files of `repo` at `revision` (default branch if None), with sizes and LFS sha256."""
    with hub_errors(repo):
        info = HfApi().model_info(repo, revision=revision, files_metadata=True)
    safe, unsafe = [], []
    for sibling in info.siblings or []:
        if not is_safe_repo_path(sibling.rfilename):
            unsafe.append(sibling.rfilename)
            continue
        sha256 = sibling.lfs.sha256 if sibling.lfs is not None else None
        size = sibling.lfs.size if sibling.lfs is not None else sibling.size
        safe.append(RepoFile(path=sibling.rfilename, size=size, sha256=sha256))
    if not info.sha:
        raise BadInputError(f"the Hub gave no commit for {repo}; try again later")
    return RepoListing(
        repo=repo, commit=info.sha, files=tuple(safe), unsafe_names=tuple(unsafe), gated=bool(info.gated)
    )


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
                downloads=m.downloads or 0,
                likes=m.likes or 0,
                updated=_iso(m.last_modified),
                gated=bool(m.gated),
            )
            for m in found
        ]
