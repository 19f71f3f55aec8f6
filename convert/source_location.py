"""Turn the SRC a user typed into a local checkpoint folder: a path, or a Hub repo id to download."""

from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path

from llamadesk.app.core.errors import BadInputError, LlamadeskError

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")

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
# first one the repo has is downloaded.
WEIGHT_PATTERNS = (
    ("model.safetensors", "model-*.safetensors", "model.safetensors.index.json"),
    ("pytorch_model.bin", "pytorch_model-*.bin", "pytorch_model.bin.index.json"),
    ("consolidated.*.pth",),
)


# Packages whose exceptions mean "the network failed" when they escape huggingface-hub.
NETWORK_ERROR_MODULES = ("httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3", "ssl", "socket")


def looks_like_repo_id(source: str) -> bool:
    return bool(REPO_ID.match(source)) and not Path(source).exists()


def files_to_download(repo_files: list[str]) -> list[str]:
    """The repo's files conversion needs: config, tokenizer, and one weight format."""
    wanted = [f for f in repo_files if f in TOKENIZER_AND_CONFIG]
    for patterns in WEIGHT_PATTERNS:
        weights = [f for f in repo_files if any(fnmatch(f, p) for p in patterns)]
        if weights:
            return wanted + weights
    return wanted


def download_repo(repo_id: str, revision: str | None = None) -> Path:
    """Download what conversion needs from a Hub repo (cached by huggingface-hub) and return its folder."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()  # its retry warnings would bury the one line llamadesk prints

    try:
        repo_files = HfApi().list_repo_files(repo_id, revision=revision)
        needed = files_to_download(repo_files)
        if not any(f.endswith((".safetensors", ".bin", ".pth")) for f in needed):
            raise BadInputError(f"{repo_id}: the repo has no PyTorch or safetensors weights to convert")
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=needed))
    except GatedRepoError:
        raise BadInputError(
            f"{repo_id}: a gated repo; accept its license on the Hub and log in with `hf auth login`"
        ) from None
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise BadInputError(f"{repo_id}: no such repo (or revision) on the Hub; check the name") from None
    except HfHubHTTPError as err:
        raise LlamadeskError(
            f"{repo_id}: the Hub answered with an error ({_first_line(err)}); try again later"
        ) from None
    except Exception as err:
        # huggingface-hub lets its HTTP client's connection errors through (httpx's, not OSError).
        if isinstance(err, OSError) or type(err).__module__.split(".")[0] in NETWORK_ERROR_MODULES:
            raise LlamadeskError(
                f"{repo_id}: could not download ({_first_line(err)}); check the network and try again"
            ) from None
        raise


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def resolve_source(source: str) -> Path:
    """A local checkpoint folder for SRC: the folder itself, or a fresh download of a Hub repo id."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise BadInputError(f"{source}: a file; give the checkpoint's folder (with config.json or params.json)")
    if looks_like_repo_id(source):
        return download_repo(source)
    raise BadInputError(f"{source}: no such folder, and not a Hub repo id (owner/name)")
