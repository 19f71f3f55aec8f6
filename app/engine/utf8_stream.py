"""Turning a stream of token bytes into whole characters.

A token can end in the middle of a multi-byte UTF-8 character (CJK, emoji); printing it as is
shows garbage. An incremental decoder holds the incomplete tail back until the next token
completes it. When the reply ends first (--max-tokens, a full context, a stop), the held-back
bytes are the start of a character the model never finished: they are dropped, not shown as
U+FFFD.
"""

from __future__ import annotations

import codecs


class Utf8Stream:
    """Feed token bytes, get back only complete characters."""

    def __init__(self) -> None:
        # "replace" only for bytes that can never become a character (a stray continuation byte,
        # an invalid lead byte): the decoder holds a valid but incomplete tail back, never replaces it.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        """The characters completed by `data` (may be empty while a character is incomplete)."""
        return self._decoder.decode(data)

    def flush(self) -> str:
        """The end of the stream: a character left incomplete is dropped (returns "")."""
        self._decoder.reset()
        return ""
