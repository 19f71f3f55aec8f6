"""huggingface-hub's exceptions, turned into one line a user can act on.

Its messages are written for developers (several lines, URLs, `repo_type` advice); llamadesk
prints one line that says what is wrong and what to do. The table is ordered: subclasses first
(a GatedRepoError is also a RepositoryNotFoundError).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx2
from huggingface_hub import constants
from huggingface_hub.errors import (
    DisabledRepoError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import logging as hf_logging

from llamadesk.app.core.errors import MALFORMED_ANSWER, BadInputError, LlamadeskError

LOGIN_HINT = "log in with `hf auth login` or set HF_TOKEN to a token from https://huggingface.co/settings/tokens"

# (exception type, error llamadesk raises, message; {repo} and {endpoint} are filled in)
HUB_ERROR_MESSAGES: tuple[tuple[type[BaseException], type[LlamadeskError], str], ...] = (
    (
        HFValidationError,
        BadInputError,
        "'{repo}' is not a Hub repo id; write it as OWNER/NAME, e.g. bartowski/SmolLM2-135M-Instruct-GGUF",
    ),
    (GatedRepoError, LlamadeskError, "{repo} is gated: accept its terms on {endpoint}/{repo}, then " + LOGIN_HINT),
    (DisabledRepoError, LlamadeskError, "{repo} has been disabled on the Hub; choose another repo"),
    (
        RepositoryNotFoundError,
        BadInputError,
        "no repo {repo} on the Hub (check the spelling; if it is private, " + LOGIN_HINT + ")",
    ),
    (RevisionNotFoundError, BadInputError, "{repo} has no such revision; check the branch, tag or commit"),
    (
        RemoteEntryNotFoundError,
        BadInputError,
        "{repo} has no such file; run `llamadesk pull {repo} --list` to see its GGUF files",
    ),
    (
        OfflineModeIsEnabled,
        LlamadeskError,
        "offline mode is on (HF_HUB_OFFLINE) and {repo} is not in the cache; unset HF_HUB_OFFLINE to download it",
    ),
    (
        LocalEntryNotFoundError,
        LlamadeskError,
        "{repo} is not in the cache and the Hub at {endpoint} cannot be reached; check your connection",
    ),
    (
        httpx2.TimeoutException,
        LlamadeskError,
        "the Hub at {endpoint} did not answer in time; check your connection and pull again (downloads resume)",
    ),
    (
        httpx2.UnsupportedProtocol,  # a redirect to file:// or another scheme: not the network's fault
        LlamadeskError,
        "the Hub at {endpoint} sent llamadesk to an address that is not http(s); check HF_ENDPOINT and your proxy",
    ),
    (
        httpx2.TransportError,
        LlamadeskError,
        "cannot reach the Hub at {endpoint}; check your connection, or set HF_HUB_OFFLINE=1 to use downloaded models",
    ),
    (
        httpx2.TooManyRedirects,  # a RequestError, not a TransportError (a captive portal, a broken proxy)
        LlamadeskError,
        "the Hub at {endpoint} redirects in a loop; check HF_ENDPOINT and your proxy, or try again later",
    ),
    (
        httpx2.RequestError,  # whatever else stops a request on the way
        LlamadeskError,
        "a request to the Hub at {endpoint} failed; check your connection and HF_ENDPOINT, and try again",
    ),
)


def hub_error_line(err: BaseException, repo: str) -> LlamadeskError | None:
    """The user-facing error for a huggingface-hub exception, or None if it is not one."""
    for kind, raised, message in HUB_ERROR_MESSAGES:
        if isinstance(err, kind):
            return raised(message.format(repo=repo, endpoint=constants.ENDPOINT))
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        status = err.response.status_code
        if status == 401:
            return LlamadeskError(f"the Hub refused access to {repo} (401); {LOGIN_HINT}")
        if status == 403:
            return LlamadeskError(
                f"the Hub refused access to {repo} (403): your token lacks permission for it; {LOGIN_HINT}"
            )
        return LlamadeskError(f"the Hub answered {status} for {repo}; try again later")
    if isinstance(err, MALFORMED_ANSWER):  # after the table, whose HFValidationError is a ValueError too
        return BadInputError(
            f"the Hub at {constants.ENDPOINT} sent an answer about {repo} that is not what a Hub sends "
            f"({type(err).__name__}); check HF_ENDPOINT, or try again later"
        )
    return None


def quiet_hub_logging() -> None:
    """Keep huggingface-hub's retry warnings off the terminal: the CLI says what happened in one
    line when it gives up (its progress bars are not logging and stay)."""
    hf_logging.set_verbosity_error()


@contextlib.contextmanager
def hub_errors(repo: str) -> Iterator[None]:
    """Inside this block, huggingface-hub's exceptions become llamadesk's one-line errors."""
    try:
        yield
    except LlamadeskError:
        raise
    except Exception as err:
        translated = hub_error_line(err, repo)
        if translated is None:
            raise
        raise translated from err
