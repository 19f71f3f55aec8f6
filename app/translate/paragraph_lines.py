"""Which lines of a paragraph belong together, and what the model is given for lines put together.

A paragraph of short lines (an address, a verse) is translated line by line, but a link, a code
span, an HTML tag or comment may run over a line break, and cut there it broke: the model got
"[the installation" and "guide](https://...)" apart and the link was lost, "`make" and "install`"
were translated as words, and an `<img ...>` written over three lines lost its `height="120">`.
Lines such a span crosses are one unit.

A paragraph's lines may start with a container's markup (a quote's "> ", a list item's
indentation), so a unit's text holds, between two lines' words, a line break: the line's ending
and the next line's markup. The model is given a unit (or a paragraph wrapped for width) on one
line, each line break outside a protected span becoming one space; a protected span that holds a
line break keeps it, since the model sees only its marker: the document gets the span back byte for
byte, and the translation is re-wrapped around it (rewrapping.py), each line break put back as it was.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from llamadesk.app.translate.markdown_links import LINK
from llamadesk.app.translate.protection import find_spans


@dataclass(frozen=True)
class Line:
    """One line of a paragraph: the containers' markup before it, its text, and its line ending."""

    prefix: str
    text: str
    ending: str


def unit_text(lines: Sequence[Line]) -> tuple[str, tuple[str, ...]]:
    """The text of `lines` as one unit, from the first line's text to the last one's (the first
    prefix and the last ending left out), and its line breaks: each the whitespace that ends a line,
    its ending, the next line's prefix and indentation, in order."""
    parts = [lines[0].text]
    breaks = []
    for before, after in zip(lines, lines[1:], strict=False):
        words_after = after.text.lstrip(" \t")
        line_break = before.text[len(before.text.rstrip(" \t")) :] + before.ending + after.prefix
        line_break += after.text[: len(after.text) - len(words_after)]
        breaks.append(line_break)
        parts += [before.ending, after.prefix, after.text]
    return "".join(parts), tuple(breaks)


def break_positions(text: str, breaks: Sequence[str]) -> list[tuple[int, int]]:
    """Where each of `breaks` (a unit's line breaks, in order) stands in `text`. Each holds a line
    ending and `text` has none between them, so each is found where it is."""
    positions = []
    position = 0
    for line_break in breaks:
        start = text.index(line_break, position)
        position = start + len(line_break)
        positions.append((start, position))
    return positions


def line_groups(lines: Sequence[Line]) -> list[list[Line]]:
    """`lines` in runs: a line and the next are in one run where a link, a code span or an HTML tag
    or comment runs over the break between them."""
    text, breaks = unit_text(lines)
    crossed = _held_breaks(break_positions(text, breaks), _spans_over_breaks(text, with_links=True))
    groups: list[list[Line]] = [[lines[0]]]
    for line, joined in zip(lines[1:], crossed, strict=True):
        if joined:
            groups[-1].append(line)
        else:
            groups.append([line])
    return groups


def free_breaks(text: str, breaks: Sequence[str]) -> list[tuple[int, int]]:
    """Where the line breaks of `text` that no protected span holds stand: those the model's text
    is given a space for, and the re-wrapped translation gets back."""
    positions = break_positions(text, breaks)
    held = _held_breaks(positions, _spans_over_breaks(text))
    return [position for position, is_held in zip(positions, held, strict=True) if not is_held]


def one_line(text: str, breaks: Sequence[str]) -> str:
    """`text` on one line: each line break outside a protected span (which the model sees as a
    marker, and which is put back as it was) becomes one space."""
    parts = []
    position = 0
    for start, end in free_breaks(text, breaks):
        parts += [text[position:start], " "]
        position = end
    parts.append(text[position:])
    return "".join(parts)


def spans_over_breaks(text: str) -> list[str]:
    """The protected spans of `text` that hold a line break, as they stand in it."""
    return [text[start:end] for start, end in _spans_over_breaks(text)]


def only_markup(text: str) -> bool:
    """Whether `text` holds nothing but HTML tags, comments, entities and whitespace (an image written
    over several lines: there is nothing for the model in it)."""
    rest = []
    position = 0
    for start, end, kind in find_spans(text):
        if kind == "html-tag":
            rest.append(text[position:start])
            position = end
    rest.append(text[position:])
    return position > 0 and not "".join(rest).strip()


def _held_breaks(positions: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[bool]:
    """For each break (in order), whether one of `spans` holds it."""
    held = [False] * len(positions)
    starts = [start for start, _ in positions]
    for span_start, span_end in spans:
        index = bisect.bisect_right(starts, span_start)
        while index < len(positions) and positions[index][1] <= span_end:
            held[index] = True
            index += 1
    return held


def _spans_over_breaks(text: str, with_links: bool = False) -> list[tuple[int, int]]:
    spans = [(start, end) for start, end, _ in find_spans(text)]
    if with_links:  # a link's text is translated, but its line must not be cut from the target's
        spans += [match.span() for match in LINK.finditer(text)]
    return sorted((start, end) for start, end in spans if re.search(r"[\r\n]", text[start:end]))
