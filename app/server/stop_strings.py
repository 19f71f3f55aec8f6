"""Cutting a streamed reply at the first of the client's stop sequences.

The reply arrives in pieces, and a stop sequence can straddle two of them ("\n\nUser" as "\n" +
"\nUser"), so text that could still become a stop sequence is held back until the next piece
says whether it does. Nothing past a stop sequence, and not the sequence itself, reaches the client.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopScanner:
    def __init__(self, stops: Sequence[str]):
        self._stops = [s for s in stops if s]
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """The text that is safe to send now, and whether a stop sequence was reached."""
        if not self._stops:
            return text, False
        buffer = self._held + text
        found = [i for i in (buffer.find(s) for s in self._stops) if i != -1]
        if found:
            self._held = ""
            return buffer[: min(found)], True
        keep = self._longest_pending_suffix(buffer)
        self._held = buffer[len(buffer) - keep :]
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        """What was held back, at the end of the reply (no stop sequence came after all)."""
        held, self._held = self._held, ""
        return held

    def _longest_pending_suffix(self, buffer: str) -> int:
        longest = max(len(s) for s in self._stops) - 1
        for n in range(min(longest, len(buffer)), 0, -1):
            tail = buffer[-n:]
            if any(s.startswith(tail) for s in self._stops):
                return n
        return 0
