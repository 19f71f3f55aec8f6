"""Cutting text into what the model translates, and putting the translations back in place.

A text becomes a list of `Piece`s: either kept verbatim (blank lines, code blocks, Markdown
markup such as `## `, `- `, `> ` and table pipes, indentation) or translated. Concatenating the
pieces gives back the text exactly, so translating the translatable ones and concatenating again
keeps the document's structure. Translatable pieces are then split into sentences and packed
into chunks that fit a token budget, one model call per chunk.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from llamadesk.app.translate.markdown_blocks import opened_html_block, opens_table
from llamadesk.app.translate.markdown_containers import Container, read_line
from llamadesk.app.translate.paragraph_lines import (
    Line,
    free_breaks,
    line_groups,
    one_line,
    only_markup,
    spans_over_breaks,
    unit_text,
)
from llamadesk.app.translate.rewrapping import rewrap


@dataclass(frozen=True)
class Piece:
    """A stretch of the input: kept as it is, or translated."""

    text: str  # exactly as in the input: joining every piece's text gives the input back
    translatable: bool
    # A hard-wrapped paragraph (or lines a link or a code span runs over) is translated as one
    # text, then re-wrapped to as many lines: its line breaks, each a line's ending with the next
    # line's markup and indentation ("\r\n> "), in order.
    breaks: tuple[str, ...] = ()

    @property
    def wrapped(self) -> bool:
        return bool(self.breaks)

    @property
    def source(self) -> str:
        """What the model is given: a wrapped paragraph's lines joined into one line."""
        return one_line(self.text, self.breaks) if self.wrapped else self.text

    def rewrapped(self, translation: str) -> str:
        """A wrapped piece's translation on as many lines as the piece, each line break as it was; a
        protected span with line breaks of its own (an HTML tag, a code span) stays whole. A
        translation that is the source (a same-language copy) gives the piece back byte for byte."""
        if translation == self.source:
            return self.text
        kept = [self.text[start:end] for start, end in free_breaks(self.text, self.breaks)]
        return rewrap(translation, kept, spans_over_breaks(self.text))


def split_lines(text: str) -> list[Piece]:
    """Line mode (piped text): each non-blank line is one piece; line breaks and blanks are kept.

    The N-th line of the output is the translation of the N-th line of the input.
    """
    pieces: list[Piece] = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        if body.strip():
            pieces.append(Piece(body, True))
        elif body:
            pieces.append(Piece(body, False))
        if ending:
            pieces.append(Piece(ending, False))
    return _coalesce(pieces)


# Line shapes of Markdown (and of plain text, where they mean the same), read on a line's content
# (what its quote and list markers leave, markdown_containers.py): (name, pattern). A pattern's
# group "markup" is kept verbatim, the rest of the line is translated. Each pattern matches in time
# linear in the line: `(?P<text>.*?)(?P<tail>\s+#+)?\s*$` took 33 s on a heading with 30,000 spaces
# in it (each start of `.*?` scanned the whole run), so the text after the markup is cut in code.
#
# A backtick fence's info string holds no backtick: "```ls``` lists the files" is a paragraph that
# starts with a code span (taken for a fence, it kept the rest of the document untranslated).
FENCE_RE = re.compile(r"^[ \t]*(`{3,}(?=[^`]*$)|~{3,})")
BLOCK_LINE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("rule", re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")),
    ("table-separator", re.compile(r"^[ \t]*(?:\|[ \t]*)?:?-{2,}:?[ \t]*(?:\|[ \t]*:?-{2,}:?[ \t]*)*(?:\|[ \t]*)?$")),
    # The text after the markup is the heading's, but for its closing #s or its attributes
    # ("{#install .unnumbered}": the anchor links use): `_heading_tail`.
    ("heading", re.compile(r"^(?P<markup> {0,3}#{1,6})(?=[ \t]|$)")),
    ("table-row", re.compile(r"^[ \t]*\|.*\|[ \t]*$")),
    # An HTML block's line: kept when it is only tags, its text translated (tags protected) if not
    (
        "html-block",
        re.compile(r"^[ \t]*<(?:!--|/?(?:div|p|table|tr|td|th|details|summary|br|hr|img)\b).*>[ \t]*$", re.I),
    ),
    ("front-matter", re.compile(r"^---[ \t]*$")),
    # A setext heading's underline (the text above it is the heading)
    ("setext-underline", re.compile(r"^ {0,3}=+[ \t]*$")),
    # "[^1]: The guide explains...": a footnote's label is markup, its text is prose
    ("footnote", re.compile(r"^(?P<markup> {0,3}\[\^[^\]\n]+\]:)")),
    # "[label]: https://... "title"": what reference links point to, kept byte for byte
    ("link-definition", re.compile(r"^ {0,3}\[[^\]\n]+\]:[ \t]*\S")),
)
# A heading's closing #s or attributes, once the text after them is stripped of its spaces
_HEADING_ATTRIBUTES = re.compile(r"\{[#.][^{}\n]*\}")
# A paragraph whose lines (all but the last) are at least this long was wrapped for width, so it
# is one text; shorter lines (addresses, verses, lists without markers) are kept line by line.
WRAPPED_LINE_MIN = 40


# Front matter (YAML's ---, Hugo's TOML +++) at the very start is metadata: its opening line and
# the lines that may close it.
FRONT_MATTER = {"---": ("---", "..."), "+++": ("+++",)}
BOM = "\ufeff"


def _indent(body: str) -> int:
    return len(body.expandtabs(4)) - len(body.expandtabs(4).lstrip())


def _closes(fence: re.Match[str], body: str, opened: str) -> bool:
    """Whether `body`, a fence line (a line's content, inside its containers), closes the fence
    `opened`: the same character, as long or longer, nothing after it, and indented at most 3
    columns. A deeper one is the code's own text (a Markdown example of a list item's fence):
    closing there, the code after it went to the model and the rest of the document was kept as
    code, untranslated."""
    marks = fence.group(1)
    return (
        marks[0] == opened[0]
        and len(marks) >= len(opened)
        and not body.strip()[len(marks) :].strip()
        and _indent(body) <= 3
    )


def _front_matter_end(lines: list[str]) -> int | None:
    """The index of the line closing the front matter the text opens with (None: it has none)."""
    closers = FRONT_MATTER.get(lines[0].rstrip()) if lines else None
    if closers is None:
        return None
    return next((i for i in range(1, len(lines)) if lines[i].rstrip() in closers), None)


def _display_math_end(lines: list[str], start: int) -> int | None:
    """Where a display math block opened at `start` ends: the first line (that one or a later one)
    ending with `$$`, before any blank line, when `start` starts with `$$`; None otherwise. Sent to
    the model, `E = mc^2` came back as `E = m²`; an opener with no closer after it is left as text
    (it may be a price)."""
    opener = lines[start].strip()
    if not opener.startswith("$$"):
        return None
    if len(opener) > 2 and opener.endswith("$$"):
        return start
    for end in range(start + 1, len(lines)):
        body = lines[end].strip()
        if not body:  # display math has no blank line (it ends a paragraph, and so the block)
            return None
        if body.endswith("$$"):
            return end
    return None


def split_document(text: str, *, indented_code: bool = True) -> list[Piece]:
    """Document mode: Markdown-aware pieces; code blocks, markup and blank lines are kept verbatim.

    `indented_code`: whether lines indented 4 columns after a blank line are code, as in Markdown;
    not in a plain text file, where they are a letter's indented paragraphs (which were silently
    left untranslated): those are translated, their indentation kept.
    """
    pieces: list[Piece] = []
    if text.startswith(BOM):  # a BOM is a byte order mark, not the start of the first line's text
        pieces.append(Piece(BOM, False))
        text = text[len(BOM) :]
    lines = text.splitlines(keepends=True)
    front_matter_end = _front_matter_end(lines)
    if front_matter_end is not None:
        pieces.append(Piece("".join(lines[: front_matter_end + 1]), False))
        lines = lines[front_matter_end + 1 :]
    splitter = _MarkdownSplitter(pieces, indented_code)
    index = 0
    while index < len(lines):
        math_end = (
            _display_math_end(lines, index) if splitter.in_fence is None and splitter.in_raw_html is None else None
        )
        if math_end is None:
            splitter.add(lines[index])
            index += 1
            continue
        for line in lines[index : math_end + 1]:
            splitter.keep(line, blank=True)
        index = math_end + 1
    splitter.flush_paragraph()
    return _coalesce(pieces)


class _MarkdownSplitter:
    """Markdown's blocks line by line. Each line is first read for the containers it is in (quotes,
    list items: their markup is kept), then its content either continues a block it is in (a fence,
    a raw HTML block), is kept (code, blank lines), or is markup and text."""

    def __init__(self, pieces: list[Piece], indented_code: bool = True):
        self.pieces = pieces
        self.indented_code = indented_code
        self.containers: list[Container] = []
        self.paragraph: list[Line] = []
        self.in_fence: str | None = None
        self.in_raw_html: re.Pattern[str] | None = None  # what ends the raw HTML block ("-->", "</script>")
        # A GFM table's rows run from its delimiter row to a blank line or another block.
        self.in_table = False
        self.previous_row: str | None = None  # the line before, when it was a table row ("| a | b |")
        self.previous_blank = True

    def flush_paragraph(self) -> None:
        if self.paragraph:
            self.pieces.extend(_paragraph_pieces(self.paragraph))
            self.paragraph = []

    def keep(self, line: str, *, blank: bool | None = None) -> None:
        """`line` as it is, ending the paragraph before it; `blank`: whether it counts as a blank
        line for the indented code after it (None: as the line before it did, as code blocks do)."""
        self.flush_paragraph()
        self.pieces.append(Piece(line, False))
        self.in_table, self.previous_row = False, None  # a blank line, code or HTML ends a table
        if blank is not None:
            self.previous_blank = blank

    def add(self, line: str) -> None:
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        in_code = self.in_fence is not None or self.in_raw_html is not None
        read = read_line(self.containers, body, paragraph_open=bool(self.paragraph), code_open=in_code)
        all_matched = read.matched == len(self.containers)
        if all_matched and in_code:
            self._continue_code(body[read.content_start :])
            self.keep(line)
            return
        content = body[read.content_start :]
        if not all_matched and not read.opened and self.paragraph and self._continues_paragraph(content):
            # A lazy continuation line: the paragraph goes on, in the containers it is in
            self.paragraph.append(Line(body[: read.content_start], content, ending))
            self.previous_blank = False
            return
        if not all_matched or read.opened:  # containers closed or opened end the blocks inside them
            self.flush_paragraph()
            self.in_fence, self.in_raw_html = None, None
            self.in_table, self.previous_row = False, None
            self.containers = [*self.containers[: read.matched], *read.opened]
        self._content_line(line, body[: read.content_start], content, ending)

    def _continue_code(self, content: str) -> None:
        """A line inside a fence or a raw HTML block: whether it ends it."""
        if self.in_fence is not None:
            fence = FENCE_RE.match(content)
            if fence and _closes(fence, content, self.in_fence):
                self.in_fence = None
        elif self.in_raw_html is not None and self.in_raw_html.search(content):
            self.in_raw_html = None

    def _continues_paragraph(self, content: str) -> bool:
        """Whether `content`, on a line that leaves the paragraph's containers, is its text still."""
        return (
            bool(content.strip())
            and FENCE_RE.match(content) is None
            and opened_html_block(content) is None
            and _block_kind(content)[0] is None
        )

    def _content_line(self, line: str, prefix: str, content: str, ending: str) -> None:
        fence = FENCE_RE.match(content)
        opened_html = opened_html_block(content)
        if fence and _indent(content) <= 3:
            self.in_fence = fence.group(1)
            self.keep(line)
        elif opened_html is not None:
            end, searched_from = opened_html
            self.in_raw_html = None if end.search(content, searched_from) else end
            self.keep(line)
        elif not content.strip():
            self.keep(line, blank=True)
        elif self.indented_code and self.previous_blank and not self.paragraph and _indent(content) >= 4:
            # Indented code is 4 columns past the text it belongs to: inside a list item, its
            # content column, so a list item's indented second paragraph is prose, not code.
            self.keep(line, blank=True)
        else:
            self._text_line(Line(prefix, content, ending))

    def _text_line(self, line: Line) -> None:
        kind, match = _block_kind(line.text)
        if self.in_table and kind is None:
            kind = "table-row"  # a GFM row needs no pipe at either end, nor any pipe at all
        elif self.in_table and kind not in ("table-row", "table-separator"):
            self.in_table = False  # another block (a heading, a quote, a list) ends the table
        elif kind == "table-separator" and not self.in_table:
            self._open_table(line.text)
        self.previous_row = line.text if kind == "table-row" else None
        if kind is None:
            self.paragraph.append(line)
        else:
            self.flush_paragraph()
            self.pieces.extend(_block_pieces(kind, match, line))
        self.previous_blank = False

    def _open_table(self, delimiter: str) -> None:
        """A delimiter row under a header row (the paragraph's last line, or a row with outer pipes)
        starts a table: the header's cells are translated one by one, not as a line of prose."""
        header_line = self.paragraph[-1] if self.paragraph else None
        header = header_line.text if header_line is not None else self.previous_row
        if header is None or not opens_table(header, delimiter):
            return
        if header_line is not None:
            self.paragraph.pop()
            self.flush_paragraph()
            self.pieces.extend(_block_pieces("table-row", None, header_line))
        self.in_table = True


def _block_kind(body: str) -> tuple[str | None, re.Match[str] | None]:
    for kind, pattern in BLOCK_LINE_PATTERNS:
        match = pattern.match(body)
        if match:
            return kind, match
    return None, None


def _block_pieces(kind: str, match: re.Match[str] | None, line: Line) -> list[Piece]:
    return [Piece(line.prefix, False), *_shape_pieces(kind, match, line.text), Piece(line.ending, False)]


def _shape_pieces(kind: str, match: re.Match[str] | None, body: str) -> list[Piece]:
    """A line of a known shape (without its line ending): its markup kept, its text translated."""
    if kind in ("heading", "footnote") and match is not None:
        text = body[match.end() :]
        tail = _heading_tail(text) if kind == "heading" else ""
        text = text[: len(text) - len(tail)]
        return [Piece(match.group("markup"), False), *_translatable_with_edges(text), Piece(tail, False)]
    if kind == "table-row":
        return _table_cells(body)
    if kind == "html-block" and not only_markup(body):
        return _translatable_with_edges(body)  # "<p>Text</p>": its tags are protected, its text translated
    return [Piece(body, False)]


def _heading_tail(text: str) -> str:
    """What ends a heading's text and is kept: its closing #s or its attributes, with the spaces
    before and after them ("" when it has neither)."""
    core = text.rstrip(" \t")
    if core.endswith("}"):
        opening = core.rfind("{")
        if opening > 0 and core[opening - 1] in " \t" and _HEADING_ATTRIBUTES.fullmatch(core, opening):
            return text[len(core[:opening].rstrip(" \t")) :]
    if core.endswith("#"):
        before = core.rstrip("#")
        if not before or before[-1] in " \t":
            return text[len(before.rstrip(" \t")) :]
    return text[len(core) :]


def _table_cells(body: str) -> list[Piece]:
    pieces: list[Piece] = []
    # Split at every pipe that is not escaped, even one inside a code span: GFM splits a row before
    # it reads code spans (markdown_blocks.cells), and a pipe in a cell's code is written "\|".
    for part in re.split(r"((?<!\\)\|)", body):
        if part == "|" or not part.strip():
            pieces.append(Piece(part, False))
        else:
            pieces.extend(_translatable_with_edges(part))
    return pieces


def _translatable_with_edges(text: str, breaks: tuple[str, ...] = ()) -> list[Piece]:
    """Whitespace around a translatable text is markup too (table cell padding, indentation), and so
    is a backslash that ends it: a hard line break, which the model dropped (an odd run of
    backslashes; an even one is escaped backslashes)."""
    core = text.strip()
    if (len(core) - len(core.rstrip("\\"))) % 2:
        core = core[:-1].rstrip()
    if not core:
        return [Piece(text, False)]
    start = text.index(core)
    pieces = [Piece(text[:start], False), Piece(core, True, breaks), Piece(text[start + len(core) :], False)]
    return [p for p in pieces if p.text]


def _paragraph_pieces(lines: list[Line]) -> list[Piece]:
    """A paragraph wrapped for width is one text; else each line is, but lines that a link, a code
    span or an HTML tag runs over are one (paragraph_lines.py), and lines that hold nothing but HTML
    tags are kept as they are. The markup before the first line and the last line's ending are kept."""
    bodies = [line.text for line in lines]
    wrapped = (
        len(bodies) > 1
        and all(len(b.strip()) >= WRAPPED_LINE_MIN for b in bodies[:-1])
        and not any(
            b.endswith("  ") or b.endswith("\\")
            for b in bodies[:-1]  # Markdown hard breaks are meant
        )
    )
    groups = [lines] if wrapped else line_groups(lines)
    pieces: list[Piece] = []
    for group in groups:
        text, breaks = unit_text(group)
        pieces.append(Piece(group[0].prefix, False))
        if only_markup(text):
            pieces.append(Piece(text, False))
        else:
            pieces.extend(_translatable_with_edges(text, breaks))
        pieces.append(Piece(group[-1].ending, False))
    return [p for p in pieces if p.text]


def _coalesce(pieces: Iterable[Piece]) -> list[Piece]:
    """Adjacent verbatim pieces merged into one (fewer, larger pieces; same text)."""
    merged: list[Piece] = []
    for piece in pieces:
        if not piece.text:
            continue
        if merged and not piece.translatable and not merged[-1].translatable:
            merged[-1] = Piece(merged[-1].text + piece.text, False)
        else:
            merged.append(piece)
    return merged


# -- sentences ------------------------------------------------------------------------------

# Abbreviations after which a period does not end a sentence (lowercase, without the period).
ABBREVIATIONS = frozenset(
    "e.g i.e etc vs mr mrs ms dr prof sr jr st no nos fig figs vol approx cf al inc ltd co corp dept "
    "est min max jan feb mar apr jun jul aug sep sept oct nov dec ca resp incl excl".split()
)
# A sentence ends at . ! ? … (and CJK 。！？) followed by space and something that starts one.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+(?=[\"'“‘(\[¿¡]*[A-ZÀ-ÖØ-Þ0-9⟦])|(?<=[。！？])")


def split_sentences(text: str) -> list[str]:
    """`text` cut into sentences; joining them gives `text` back (spaces stay on the left piece)."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        before = text[start : match.start()].rstrip("\"'”’)]")
        # The word before the period, read from the end: a search of the whole text before it grew
        # with each abbreviation passed ("e.g. A e.g. A ..." took time quadratic in its length).
        last_word = before.rsplit(None, 1)[-1] if before.strip() else ""
        word = last_word[:-1] if last_word.endswith(".") and len(last_word) > 1 else ""
        if word and (word.casefold().strip("(") in ABBREVIATIONS or re.fullmatch(r"[A-Z]", word)):
            continue
        sentences.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        sentences.append(text[start:])
    return [s for s in sentences if s]


@dataclass(frozen=True)
class Chunk:
    """One model call's worth of source text, and where its translation goes."""

    piece: int  # index of the translatable Piece it belongs to
    text: str  # source text, without the whitespace around it
    separator: str  # whitespace that followed it in the source (kept between translations)


def pack_chunks(pieces: list[Piece], max_tokens: int, count_tokens: Callable[[str], int]) -> list[Chunk]:
    """Every translatable piece cut into chunks of at most `max_tokens` source tokens.

    A piece that fits is one chunk (the model sees whole paragraphs when it can); a longer one is
    cut at sentence ends and the sentences packed greedily; a single sentence that is still too
    long is cut at clause boundaries, then at spaces.
    """
    chunks: list[Chunk] = []
    for index, piece in enumerate(pieces):
        if not piece.translatable:
            continue
        units = _fit_units([piece.source], max_tokens, count_tokens)
        current = ""
        for unit in units:
            candidate = current + unit
            if current and count_tokens(candidate.strip()) > max_tokens:
                chunks.append(_chunk(index, current))
                current = unit
            else:
                current = candidate
        if current:
            chunks.append(_chunk(index, current))
    return chunks


def _chunk(piece: int, text: str) -> Chunk:
    core = text.rstrip()
    return Chunk(piece, core, text[len(core) :])


_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")


def _fit_units(texts: list[str], max_tokens: int, count_tokens: Callable[[str], int]) -> list[str]:
    """Texts cut (sentences, then clauses, then words) until each fits `max_tokens`."""
    splitters: tuple[Callable[[str], list[str]], ...] = (
        split_sentences,
        lambda t: _split_keep(t, _CLAUSE_END),
        lambda t: _split_keep(t, re.compile(r"(?<=\S)\s+")),
    )
    units = texts
    for splitter in splitters:
        if all(count_tokens(u.strip()) <= max_tokens for u in units):
            break
        units = [part for u in units for part in (splitter(u) if count_tokens(u.strip()) > max_tokens else [u])]
    return units


def _split_keep(text: str, separator: re.Pattern[str]) -> list[str]:
    parts: list[str] = []
    start = 0
    for match in separator.finditer(text):
        parts.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        parts.append(text[start:])
    return parts


def assemble(pieces: list[Piece], chunks: list[Chunk], translations: list[str]) -> str:
    """The document with each translatable piece replaced by its chunks' translations."""
    by_piece: dict[int, list[str]] = {}
    for chunk, translation in zip(chunks, translations, strict=True):
        by_piece.setdefault(chunk.piece, []).append(translation + chunk.separator)
    out: list[str] = []
    for index, piece in enumerate(pieces):
        if not piece.translatable:
            out.append(piece.text)
            continue
        if index not in by_piece:
            out.append(piece.text)
            continue
        text = "".join(by_piece[index])
        out.append(piece.rewrapped(text) if piece.wrapped else text)
    return "".join(out)
