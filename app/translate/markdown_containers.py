"""Blockquotes and list items: the containers a Markdown line's content sits in.

CommonMark reads a line in two steps: first the markup of the containers it is in (a quote's `>`,
a list item's marker or the indentation that continues the item), then what is left, the line's
content, which is a fence, a heading, a table row or a paragraph's text just as at the top level.
segmentation.py once recognised fences, HTML blocks and tables only at the top level or with the
list's indentation still on the line: a fence opened on a list item's line (`1. ```sh`) or a quote's
table (`> Key | Action`) went to the model, and the item's closing fence then opened a "fence" that
kept the rest of the document untranslated. Here each line is cut into its container prefix (kept
as markup, byte for byte) and its content, and the containers left open are tracked from line to
line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A quote marker: up to 3 spaces, ">", and one optional space that belongs to the marker.
_QUOTE_MARKER = re.compile(r" {0,3}>[ \t]?")
# A list item's marker with the spaces after it; the marker needs a space or the line's end after it.
_LIST_MARKER = re.compile(r"(?P<indent> {0,3})(?P<marker>[-*+]|(?P<number>\d{1,9})[.)])(?=[ \t]|$)(?P<gap>[ \t]*)")
# "- - -", "* * *": a thematic break, not a list item
_THEMATIC_BREAK = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
# A task list's box ("- [ ] Pack"): markup of the item's line, not words to translate
_TASK_BOX = re.compile(r"\[[ xX]\][ \t]+(?=\S)")


@dataclass(frozen=True)
class Container:
    """An open blockquote, or an open list item and how far its continuation lines are indented
    (columns after the containers it sits in)."""

    kind: str  # "quote" or "item"
    content_column: int = 0


@dataclass(frozen=True)
class LineInContainers:
    """How a line continues the open containers and which new ones it opens."""

    matched: int  # how many of the open containers, outermost first, the line continues
    opened: tuple[Container, ...]  # the containers its markers open (inside the matched ones)
    content_start: int  # where the line's content starts: what is before it is container markup


def columns(text: str) -> int:
    """How many columns the whitespace `text` takes (a tab reaches the next multiple of 4)."""
    return len(text.expandtabs(4))


def _leading_columns(text: str) -> int:
    return columns(text[: len(text) - len(text.lstrip(" \t"))])


def _skip_columns(text: str, position: int, wanted: int) -> int:
    """The position past `wanted` columns of whitespace from `position` (a tab counted whole)."""
    taken = 0
    while taken < wanted and position < len(text) and text[position] in " \t":
        taken = (taken // 4 + 1) * 4 if text[position] == "\t" else taken + 1
        position += 1
    return position


def read_line(
    open_containers: list[Container], body: str, *, paragraph_open: bool = False, code_open: bool = False
) -> LineInContainers:
    """The containers `body` (a line without its ending) continues and opens, and where its content
    starts. `paragraph_open`: whether the innermost container holds a paragraph the line could
    continue (a list that starts with "2." or holds nothing cannot interrupt one); `code_open`:
    whether it holds a fence or a raw HTML block, whose lines open nothing while it lasts."""
    position = 0
    matched = 0
    for container in open_containers:
        rest = body[position:]
        if container.kind == "quote":
            marker = _QUOTE_MARKER.match(rest)
            if marker is None:
                break
            position += marker.end()
        elif rest.strip():
            if _leading_columns(rest) < container.content_column:
                break
            position = _skip_columns(body, position, container.content_column)
        matched += 1
    if code_open and matched == len(open_containers):
        return LineInContainers(matched, (), position)
    opened: list[Container] = []
    while True:
        rest = body[position:]
        quote = _QUOTE_MARKER.match(rest)
        if quote is not None:
            opened.append(Container("quote"))
            position += quote.end()
            continue
        item = _LIST_MARKER.match(rest)
        if item is None or _THEMATIC_BREAK.match(rest):
            break
        empty = not rest[item.end() :].strip()
        interrupts = not (empty or (item.group("number") not in (None, "1") and item.group("marker")[-1] in ".)"))
        if paragraph_open and matched == len(open_containers) and not opened and not interrupts:
            break  # "released in\n2024. The next...": the paragraph goes on
        gap = columns(item.group("gap"))
        marker_end = len(item.group("indent")) + len(item.group("marker"))
        # Content that starts 5 columns after the marker is indented code: the item's content is 1 in.
        content_column = marker_end + 1 if empty or gap > 4 else marker_end + gap
        opened.append(Container("item", content_column))
        position += item.end() if not (empty or gap > 4) else marker_end + 1
        box = _TASK_BOX.match(body, position)
        if box is not None:
            position = box.end()
            break
        if gap > 4:
            break
    return LineInContainers(matched, tuple(opened), min(position, len(body)))
