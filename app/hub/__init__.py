"""The Hugging Face Hub: listing repos (repo), downloading into its cache (download, cache),
its errors as one line (errors), and `pull` (pull).

huggingface-hub reads HF_ENDPOINT and its timeouts when its modules are first imported, and a
value it cannot use (a port typo, `http://[::1`, `HF_HUB_DOWNLOAD_TIMEOUT=abc`) raised a bare
ValueError from inside that import, after printing "Error importing ..." on stdout. Every module
here imports huggingface-hub, so the variables are checked here first, once, and a bad one is a
one-line error naming it. The CLI imports this package only when a command needs the Hub or a
pulled model, so `llamadesk --help` and the starter models never depend on these variables.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from llamadesk.app.core.errors import BadInputError

# The variables huggingface-hub parses as whole numbers at import (its constants module).
INTEGER_VARIABLES = ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT")


def endpoint_problem(endpoint: str) -> str | None:
    """Why huggingface-hub cannot use `endpoint` as HF_ENDPOINT, or None if it can."""
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - reading it checks it (a port over 65535 raises)
    except ValueError as err:
        return str(err)
    if parts.scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    if not parts.hostname:
        return "it names no host"
    return None


def check_hub_environment() -> None:
    """Refuse, in one line naming the variable, a Hub setting huggingface-hub would fail to import with."""
    endpoint = os.environ.get("HF_ENDPOINT")
    if endpoint is not None and (problem := endpoint_problem(endpoint.rstrip("/"))) is not None:
        raise BadInputError(f"HF_ENDPOINT={endpoint!r} is not a URL llamadesk can use ({problem}); fix or unset it")
    for name in INTEGER_VARIABLES:
        value = os.environ.get(name)
        if value is not None:
            try:
                int(value)
            except ValueError:
                raise BadInputError(f"{name}={value!r} is not a whole number of seconds; fix or unset it") from None


check_hub_environment()
