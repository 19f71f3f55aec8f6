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
_RUN = re.compile(r"(.{1,20}?)\1{" + str(REPEATS - 1) + ",}", re.DOTALL)
_LETTER = re.compile(r"[^\W\d_]")


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
