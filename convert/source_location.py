"""Turn the SRC a user typed into a local checkpoint folder: a path, or a Hub repo id to download."""

from __future__ import annotations

import errno
import re
from fnmatch import fnmatch
from pathlib import Path

from llamadesk.app.core.errors import MALFORMED_ANSWER, BadInputError, LlamadeskError
from llamadesk.app.core.value_ranges import shown

# The Hub's rules for "owner/name" (huggingface_hub's validate_repo_id): each part 1-96 of
# letters, digits, "_", "-", "."; starting and ending with a letter, digit or "_"; no "--" or "..".
_REPO_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]{0,94}[A-Za-z0-9_])?"
REPO_ID = re.compile(rf"^{_REPO_PART}/{_REPO_PART}$")

# Files conversion reads besides the weights.
TOKENIZER_AND_CONFIG = (
    "config.json",
    "params.json",
    "generation_config.json",
    "README.md",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
)
# Weight formats by preference (safetensors cannot run code and are memory-mapped); only the
# first one the repo has is downloaded. The first pattern of a Hugging Face format is its single
# file: where the repo has it, it alone is downloaded, as it alone is read (convert/checkpoint.py).
WEIGHT_PATTERNS = (
    ("model.safetensors", "model-*.safetensors", "model.safetensors.index.json"),
    ("pytorch_model.bin", "pytorch_model-*.bin", "pytorch_model.bin.index.json"),
    ("consolidated.*.pth",),
)


# Packages whose exceptions mean "the network failed" when they escape huggingface-hub.
NETWORK_ERROR_MODULES = ("httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3", "ssl", "socket")


def looks_like_repo_id(source: str) -> bool:
    if not REPO_ID.match(source) or "--" in source or ".." in source or source.endswith(".git"):
        return False
    try:
        return not Path(source).exists()
    except OSError:  # cannot be checked, so it is not taken for a repo id either
        return False


def files_to_download(repo_files: list[str]) -> list[str]:
    """The repo's files conversion needs: config, tokenizer, and one weight format."""
    wanted = [f for f in repo_files if f in TOKENIZER_AND_CONFIG]
    for patterns in WEIGHT_PATTERNS:
        # fnmatch's "*" matches "/" too: a listed "model-x/../../y.safetensors" is not a shard.
        weights = [f for f in repo_files if "/" not in f and any(fnmatch(f, p) for p in patterns)]
        if patterns[0] in weights:  # shards beside the single file would be downloaded and never read
            return wanted + [patterns[0]]
        if weights:
            return wanted + weights
    return wanted


def download_repo(repo_id: str, revision: str | None = None) -> Path:
    """Download what conversion needs from a Hub repo (cached by huggingface-hub) and return its folder."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()  # its retry warnings would bury the one line llamadesk prints

    try:
        repo_files = HfApi().list_repo_files(repo_id, revision=revision)
    except Exception as err:
        raise _hub_failure(repo_id, err) from None
    if not (isinstance(repo_files, list) and all(type(f) is str for f in repo_files)):
        raise _hub_failure(repo_id, TypeError("a file list that is not a list of names"))
    needed = files_to_download(repo_files)
    if not any(f.endswith((".safetensors", ".bin", ".pth")) for f in needed):
        raise BadInputError(f"{repo_id}: the repo has no PyTorch or safetensors weights to convert")
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=needed))
    except Exception as err:
        raise _hub_failure(repo_id, err) from None


def _hub_failure(repo_id: str, err: Exception) -> Exception:
    """The one-line error for what a huggingface-hub call raised (`err` itself when it is none of them).

    Only the Hub calls are mapped with it, so a bug of llamadesk's own still surfaces as one.
    """
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(err, GatedRepoError):
        return BadInputError(f"{repo_id}: a gated repo; accept its license on the Hub and log in with `hf auth login`")
    if isinstance(err, RepositoryNotFoundError | RevisionNotFoundError):
        return BadInputError(f"{repo_id}: no such repo (or revision) on the Hub; check the name")
    if isinstance(err, HFValidationError):  # a revision, or a name the Hub's rules refuse
        return BadInputError(f"{repo_id}: {_first_line(err)}")
    if isinstance(err, HfHubHTTPError):
        return LlamadeskError(f"{repo_id}: the Hub answered with an error ({_first_line(err)}); try again later")
    if isinstance(err, OSError) and err.errno is not None:
        cache_problem = _cache_failure(repo_id, err, Path(constants.HF_HUB_CACHE))
        if cache_problem is not None:
            return cache_problem
    # huggingface-hub lets its HTTP client's connection errors through (httpx's, not OSError).
    if isinstance(err, OSError) or type(err).__module__.split(".")[0] in NETWORK_ERROR_MODULES:
        return LlamadeskError(f"{repo_id}: could not download ({_first_line(err)}); check the network and try again")
    if isinstance(err, MALFORMED_ANSWER):
        return BadInputError(
            f"{repo_id}: the Hub at {constants.ENDPOINT} sent an answer that is not what a Hub sends "
            f"({type(err).__name__}); check HF_ENDPOINT, or try again later"
        )
    return err


# Why a download stopped on this machine's side, for errors that mean the cache cannot take it.
CACHE_FULL = {
    errno.ENOSPC: "the disk is full",
    getattr(errno, "EDQUOT", -1): "your disk quota is used up",
    errno.EFBIG: "a file grew past the largest this process may write (`ulimit -f`) or the file system holds",
}
CACHE_REFUSED = {errno.EACCES, errno.EPERM, errno.EROFS}


def _cache_failure(repo_id: str, err: OSError, cache: Path) -> LlamadeskError | None:
    """The line for a download the cache could not take, or None: a full disk or a cache folder not
    ours to write was "could not download (...); check the network", which never helps."""
    if err.errno in CACHE_FULL:
        return LlamadeskError(
            f"{repo_id}: the download into {cache} stopped: {CACHE_FULL[err.errno]}; free some space "
            "(or set HF_HOME to a folder on another disk) and try again"
        )
    if err.errno in CACHE_REFUSED:
        where = f": {err.filename}" if err.filename else ""
        return LlamadeskError(
            f"{repo_id}: the Hugging Face cache {cache} cannot be written ({err.strerror}{where}); "
            "make it writable (or set HF_HOME to another folder) and try again"
        )
    return None


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def resolve_source(source: str) -> Path:
    """A local checkpoint folder for SRC: the folder itself, or a fresh download of a Hub repo id."""
    try:
        path = Path(source).expanduser()
        is_dir, exists = path.is_dir(), path.exists()
    except RuntimeError:  # "~name/..." where no user is called name
        raise BadInputError(f"{shown(source)}: no such user's home folder") from None
    except OSError as err:  # a name longer than the file system allows
        raise BadInputError(f"{shown(source)}: not a usable path ({err.strerror})") from None
    if is_dir:
        return path
    if exists:
        raise BadInputError(f"{source}: a file; give the checkpoint's folder (with config.json or params.json)")
    if looks_like_repo_id(source):
        return download_repo(source)
    raise BadInputError(f"{shown(source)}: no such folder, and not a Hub repo id (owner/name)")
