"""Markdown blocks that one line's shape does not tell: raw HTML blocks and pipe tables.

segmentation.py reads a document line by line, each line's shape saying what it is. Two kinds of
block need more than the line itself. An HTML block of CommonMark's kinds 1 to 5 (a `<script>`,
a comment, a processing instruction, a declaration, CDATA) runs from its start line to the line
holding its end marker, whatever lies between: a comment written over several lines went to the
model line by line, and text hidden from readers came out visible. A GFM table is known by its
delimiter row (`--- | ---`), which says that the line above is its header; its rows need no
outer pipes (`Esc | Closes the window` went to the model as prose).

These follow the CommonMark and GFM specs rather than a parser (markdown-it-py): the splitter
keeps every byte of the input in a piece, markup apart from text inside one line, and a parser's
tree gives neither the bytes nor the columns of a line's markup.
"""

from __future__ import annotations

import re

# CommonMark's HTML blocks 1-5: (how the first line starts, what ends the block). The block ends at
# the end of the line holding the end marker, which may be the start line itself.
HTML_BLOCKS: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = tuple(
    (re.compile(r"^\s{0,3}" + start, re.IGNORECASE), re.compile(end, re.IGNORECASE))
    for start, end in (
        # raw code or preformatted text (a page's JavaScript went to the model line by line)
        (r"<(?:script|pre|style|textarea)(?:\s|>|$)", r"</(?:script|pre|style|textarea)>"),
        (r"<!--", r"-->"),  # a comment: what the writer hid from readers
        (r"<\?", r"\?>"),  # a processing instruction (<?php ... ?>)
        (r"<![A-Za-z]", r">"),  # a declaration (<!DOCTYPE html>)
        (r"<!\[CDATA\[", r"\]\]>"),
    )
)

_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def opened_html_block(body: str) -> tuple[re.Pattern[str], int] | None:
    """The end marker of the HTML block the line `body` opens, and where its start marker ends: the
    end marker is looked for from there (on the start line: `<?` is no `?>`, `<!--` no `-->`)."""
    for start, end in HTML_BLOCKS:
        match = start.match(body)
        if match:
            return end, match.end()
    return None


def cells(row: str) -> list[str]:
    """A table row's cells, split at every pipe that is not escaped. GFM splits a row before it
    reads any inline markup, so a pipe inside a code span splits the cell too (a `|` in a cell's
    code is written `\\|`)."""
    inner = row.strip()
    if inner.startswith("|"):
        inner = inner[1:]
    if inner.endswith("|") and not inner.endswith("\\|"):
        inner = inner[:-1]
    return _UNESCAPED_PIPE.split(inner)


def opens_table(header: str, delimiter: str) -> bool:
    """Whether `delimiter` (a line shaped like `--- | :---:`) makes `header` a table's header row:
    GFM wants a pipe in one of them and as many cells in both."""
    return ("|" in header or "|" in delimiter) and len(cells(header)) == len(cells(delimiter))
