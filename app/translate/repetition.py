"""A translation stuck in a loop: the same few words over and over, which the source does not do.

A small model decoding greedily sometimes falls into a loop ("Veuillez soit soit soit ...") and
runs until its token budget. A flipped near-tie can start one anywhere, so any segment may end
this way. It is cheap to see in the text: a unit of 1-20 characters, with a letter in it,
repeated back to back at least REPEATS times. Repetition the source has itself (a table rule,
"very very very very") is the author's, not a loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REPEATS = 6  # back-to-back occurrences of one unit that make a loop; real text rarely has 4
MAX_UNIT = 20  # characters in the longest unit looked for
_RUN = re.compile(r"(.{1," + str(MAX_UNIT) + r"}?)\1{" + str(REPEATS - 1) + ",}", re.DOTALL)
_LETTER = re.compile(r"[^\W\d_]")
_NO_BRACKETS = str.maketrans("", "", "⟦⟧")  # protection.py's marker brackets


@dataclass(frozen=True)
class Repetition:
    """Where the loop is in the output: `unit` repeated `count` times from `start`."""

    unit: str
    count: int
    start: int

    def describe(self) -> str:
        return f"repeats {self.unit.strip()!r} {self.count} times"


def runaway_repetition(source: str, output: str) -> Repetition | None:
    """The first loop in `output` that `source` does not have, or None."""
    for match in _RUN.finditer(output):
        unit = match.group(1)
        if not _LETTER.search(unit) or unit * REPEATS in source:
            continue
        return Repetition(unit, len(match.group(0)) // len(unit), match.start())
    return None


def without_repetition(output: str, repetition: Repetition) -> str:
    """`output` with the loop cut to one occurrence of its unit (and what followed it kept)."""
    end = repetition.start + len(repetition.unit) * repetition.count
    return (output[: repetition.start + len(repetition.unit)] + output[end:]).rstrip()


class LoopWatch:
    """runaway_repetition(source, text) is not None, for a text that only grows (an answer as it
    streams), at a cost per piece that does not grow with the text.

    Asked after every token, the search over the whole answer took 40 us at 100 characters and
    220 us at 600, on the thread that decodes every sequence's next token. A loop that was not in
    the text before a piece was added must end in that piece: its last REPEATS units, of some
    length L, end there, so the REPEATS - 1 units before its end equal the ones L characters
    earlier. Only when that holds somewhere in the new characters is the whole text searched; the
    answer is the whole search's, always.

    Both texts are read without the protection markers' brackets (⟦ ⟧), as the segment's own
    check reads an answer once repair_markers has dropped the brackets of markers the source does
    not have. A small model looping while it imitates markers writes ", ⟦step⟧" and ", ⟦step⟧⟧" by
    turns, which broke the run of identical units: a German segment's answer and its retry each ran
    to 9-10 repeats (75-80 tokens) before the watch saw what the segment then called a loop.
    """

    def __init__(self, source: str) -> None:
        self.source = source.translate(_NO_BRACKETS)
        self._checked = 0  # characters already known not to end a loop

    def loops(self, text: str) -> bool:
        text = text.translate(_NO_BRACKETS)  # a growing text stays a growing text without them
        start, self._checked = self._checked, len(text)
        if not any(_period_ends_at(text, end) for end in range(start + 1, len(text) + 1)):
            return False
        return runaway_repetition(self.source, text) is not None


def _period_ends_at(text: str, end: int) -> bool:
    """Whether text[:end] ends with REPEATS back-to-back copies of some unit of 1 to MAX_UNIT characters."""
    for length in range(1, min(MAX_UNIT, end // REPEATS) + 1):
        if text[end - 1] == text[end - 1 - length] and (
            text[end - REPEATS * length : end - length] == text[end - (REPEATS - 1) * length : end]
        ):
            return True
    return False
