"""Which lines of a paragraph belong together, and what the model is given for lines put together.

A paragraph of short lines (an address, a verse) is translated line by line, but a link, a code
span, an HTML tag or comment may run over a line break, and cut there it broke: the model got
"[the installation" and "guide](https://...)" apart and the link was lost, "`make" and "install`"
were translated as words, and an `<img ...>` written over three lines lost its `height="120">`.
Lines such a span crosses are one unit.

The model is given a unit (or a paragraph wrapped for width) on one line; a protected span that
holds a line break keeps it, since the model sees only its marker: the document gets the span
back byte for byte, and the translation is re-wrapped around it (`rewrap` in segmentation.py).
"""

from __future__ import annotations

import bisect
import re

from llamadesk.app.translate.markdown_links import LINK
from llamadesk.app.translate.protection import find_spans

# A line break with the spaces around it (the next line's indentation): one space in a unit's text.
_LINE_BREAK = re.compile(r"\s*[\r\n]\s*")


def line_groups(lines: list[str]) -> list[list[str]]:
    """`lines` (each with its line ending) in runs: a line and the next are in one run where a
    link, a code span or an HTML tag or comment runs over the break between them."""
    text = "".join(lines)
    ends = []  # where each line ends in `text`, its line ending included
    position = 0
    for line in lines:
        position += len(line)
        ends.append(position)
    joined = [False] * len(lines)  # joined[i]: line i and line i + 1 are in one run
    for start, end in _spans_over_breaks(text, with_links=True):
        first = bisect.bisect_right(ends, start)  # the line the span starts on
        last = bisect.bisect_right(ends, end - 1)
        for index in range(first, last):
            joined[index] = True
    groups: list[list[str]] = [[]]
    for index, line in enumerate(lines):
        groups[-1].append(line)
        if not joined[index] and index < len(lines) - 1:
            groups.append([])
    return groups


def one_line(text: str) -> str:
    """`text` on one line: each line break and the spaces around it become one space, except
    inside a protected span (which the model sees as a marker, and which is put back as it was)."""
    parts = []
    position = 0
    for start, end in _spans_over_breaks(text):
        parts += [_LINE_BREAK.sub(" ", text[position:start]), text[start:end]]
        position = end
    parts.append(_LINE_BREAK.sub(" ", text[position:]))
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


def _spans_over_breaks(text: str, with_links: bool = False) -> list[tuple[int, int]]:
    spans = [(start, end) for start, end, _ in find_spans(text)]
    if with_links:  # a link's text is translated, but its line must not be cut from the target's
        spans += [match.span() for match in LINK.finditer(text)]
    return sorted((start, end) for start, end in spans if re.search(r"[\r\n]", text[start:end]))
