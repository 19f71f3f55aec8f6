"""Turning a stream of token bytes into whole characters.

A token can end in the middle of a multi-byte UTF-8 character (CJK, emoji); printing it as is
shows garbage. An incremental decoder holds the incomplete tail back until the next token
completes it.
"""

from __future__ import annotations

import codecs


class Utf8Stream:
    """Feed token bytes, get back only complete characters."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        """The characters completed by `data` (may be empty while a character is incomplete)."""
        return self._decoder.decode(data)

    def flush(self) -> str:
        """Whatever is left at the end; an incomplete character becomes U+FFFD."""
        return self._decoder.decode(b"", final=True)
