"""What the operator chose for `llamadesk serve`, and the exposure check made before binding.

Safe by default: the server listens on loopback only. Listening anywhere else without a key is
how Ollama instances end up open on the internet, so it takes either `--api-key` or an explicit
`--insecure-no-auth`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from llamadesk.app.core.errors import BadInputError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11435  # Ollama's 11434 plus one: both can run on one machine
DEFAULT_MAX_BODY_BYTES = 1 << 20  # 1 MiB: ~250k tokens of text, far beyond a small model's context
DEFAULT_MAX_TOKENS = 4096
DEFAULT_QUEUE_SIZE = 16
MIN_KEY_LENGTH = 16


@dataclass(frozen=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = None
    insecure_no_auth: bool = False
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_tokens: int = DEFAULT_MAX_TOKENS  # the most tokens one reply may ask for
    queue_size: int = DEFAULT_QUEUE_SIZE  # requests waiting for the model beyond the one it runs


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve to anything
        return False


def check_exposure(config: ServerConfig) -> str | None:
    """Refuse an unsafe setup (BadInputError); return a warning line for an insecure one the user chose."""
    if config.api_key is not None and len(config.api_key) < MIN_KEY_LENGTH:
        raise BadInputError(f"the API key is shorter than {MIN_KEY_LENGTH} characters; use a long random one")
    if config.api_key is not None and not (config.api_key.isascii() and config.api_key.isprintable()):
        # HTTP headers carry bytes, which clients send as ASCII (openai's refuses anything else): a
        # key with other characters could never be matched, and every request would get 401.
        raise BadInputError("the API key must be printable ASCII (letters, digits, punctuation); use a long random one")
    if is_loopback(config.host) or config.api_key is not None:
        return None
    if not config.insecure_no_auth:
        raise BadInputError(
            f"--host {config.host} makes the server reachable from other machines; "
            "give --api-key (or LLAMADESK_API_KEY), or --insecure-no-auth if anyone who can reach it may use it"
        )
    return (
        f"warning: serving on {config.host} without an API key; "
        "anyone who can reach this port can use the models (--insecure-no-auth)"
    )
