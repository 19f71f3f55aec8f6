"""Putting a translated paragraph back on as many lines as its source had.

A paragraph wrapped for width (or lines a link or a code span runs over) is translated as one text,
then wrapped again to as many lines of similar width, each line break put back as it was in the
source: its line ending (a file may mix CRLF and LF) and the markup that starts the next line
(a quote's "> ", a list item's indentation).

A re-wrapped line must not start with what would begin a block: "le fichier - puis il ouvre",
cut before "-", made a list item of "- puis il ouvre" (and ">" a quote, "#" a heading, "1." a
numbered list). The break is moved instead.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Sequence

# What a line of a paragraph may not start with: a list item's marker, a quote, a heading, a fence,
# a setext underline or thematic break, an HTML block's tag.
_BLOCK_START = re.compile(
    r"(?:[-+*]|\d{1,9}[.)]|#{1,6})(?:[ \t]|$)|>|```|~~~|=+[ \t]*$|(?:[-*_][ \t]*){3,}$|<[A-Za-z/!?]"
)


def rewrap(text: str, breaks: Sequence[str], whole: Iterable[str] = ()) -> str:
    """`text` on `len(breaks) + 1` lines of similar width, line N ending with `breaks[N]` (fewer
    lines when it has fewer words). Each of `whole` (spans with line breaks of their own) found in
    `text` is kept as it is, with its own line breaks, which are not among `breaks`."""
    stand_ins: dict[str, str] = {}
    for span in whole:
        if span in text:  # wrapped as a word without spaces, then put back
            stand_in = f"\x00{len(stand_ins)}\x00"
            text = text.replace(span, stand_in, 1)
            stand_ins[stand_in] = span
    lines = _wrapped_lines(text, len(breaks) + 1)
    if len(lines) > 1:
        lines = _without_block_starts(lines)
    wrapped = lines[0] + "".join(line_break + line for line_break, line in zip(breaks, lines[1:], strict=False))
    for stand_in, span in stand_ins.items():
        wrapped = wrapped.replace(stand_in, span)
    return wrapped


def _wrapped_lines(text: str, n_lines: int) -> list[str]:
    words = text.split()
    if n_lines <= 1 or len(words) <= 1:
        return [text]
    n_lines = min(n_lines, len(words))
    width = max(1, -(-len(text) // n_lines))
    while True:
        lines = textwrap.wrap(text, width=width, break_long_words=False, break_on_hyphens=False)
        if len(lines) <= n_lines:
            break
        width += 1
    # textwrap may give fewer lines than asked; split the longest until the count is right.
    while len(lines) < n_lines:
        longest = max(range(len(lines)), key=lambda i: len(lines[i]))
        parts = lines[longest].split()
        if len(parts) < 2:
            break
        half = len(parts) // 2
        lines[longest : longest + 1] = [" ".join(parts[:half]), " ".join(parts[half:])]
    return lines


def _without_block_starts(lines: list[str]) -> list[str]:
    """`lines` with every line after the first starting with a word that begins no block: the word
    before it is moved down to it, or (where that would not do) its first word up to the line before."""
    fixed = [lines[0]]
    for line in lines[1:]:
        while line and _BLOCK_START.match(line):
            kept, _, last = fixed[-1].rpartition(" ")
            if kept and not _BLOCK_START.match(f"{last} {line}"):
                fixed[-1], line = kept, f"{last} {line}"
                break
            first, _, line = line.partition(" ")
            fixed[-1] = f"{fixed[-1]} {first}"
        if line:
            fixed.append(line)
    return fixed
