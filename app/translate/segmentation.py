"""Cutting text into what the model translates, and putting the translations back in place.

A text becomes a list of `Piece`s: either kept verbatim (blank lines, code blocks, Markdown
markup such as `## `, `- `, `> ` and table pipes, indentation) or translated. Concatenating the
pieces gives back the text exactly, so translating the translatable ones and concatenating again
keeps the document's structure. Translatable pieces are then split into sentences and packed
into chunks that fit a token budget, one model call per chunk.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from llamadesk.app.translate.markdown_blocks import opened_html_block, opens_table
from llamadesk.app.translate.paragraph_lines import line_groups, one_line, only_markup, spans_over_breaks


@dataclass(frozen=True)
class Piece:
    """A stretch of the input: kept as it is, or translated."""

    text: str  # exactly as in the input: joining every piece's text gives the input back
    translatable: bool
    # A hard-wrapped paragraph (or lines a link or a code span runs over) is translated as one
    # text, then re-wrapped to as many lines.
    wrapped: bool = False

    @property
    def source(self) -> str:
        """What the model is given: a wrapped paragraph's lines joined into one line."""
        return one_line(self.text) if self.wrapped else self.text

    @property
    def n_lines(self) -> int:
        return len(self.text.splitlines()) or 1

    @property
    def indent(self) -> str:
        """The indentation of the wrapped lines after the first."""
        lines = self.text.splitlines()
        return re.match(r"\s*", lines[1]).group(0) if len(lines) > 1 else ""  # type: ignore[union-attr]

    @property
    def line_break(self) -> str:
        """The line ending its lines have in the input (a wrapped paragraph of a CRLF file keeps CRLF)."""
        found = re.search(r"\r\n|\r|\n", self.text)
        return found.group(0) if found else "\n"

    def rewrapped(self, translation: str) -> str:
        """A wrapped piece's translation on as many lines as the piece, with its indentation and line
        endings; a protected span with line breaks of its own (an HTML tag, a code span) stays whole."""
        return rewrap(translation, self.n_lines, self.indent, self.line_break, spans_over_breaks(self.text))


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


# Line shapes of Markdown (and of plain text, where they mean the same): (name, pattern). A
# pattern's group "markup" is kept verbatim, group "text" is translated.
FENCE_RE = re.compile(r"^\s*(```+|~~~+)")  # at 0-3 columns, or a list item's content column
BLOCK_LINE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("rule", re.compile(r"^\s{0,3}([-*_])(?:\s*\1){2,}\s*$")),
    ("table-separator", re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")),
    # A heading's closing #s, or its attributes ("{#install .unnumbered}": the anchor links use)
    ("heading", re.compile(r"^(?P<markup>\s{0,3}#{1,6}\s+)(?P<text>.*?)(?P<tail>\s+#+|\s+\{[#.][^{}\n]*\})?\s*$")),
    ("list-item", re.compile(r"^(?P<markup>\s*(?:[-*+]|\d{1,9}[.)])\s+(?:\[[ xX]\]\s+)?)(?P<text>.*\S)\s*$")),
    ("quote", re.compile(r"^(?P<markup>\s*(?:>\s?)+)(?P<text>.*\S)\s*$")),
    ("table-row", re.compile(r"^\s*\|.*\|\s*$")),
    ("html-block", re.compile(r"^\s*<(?:!--|/?(?:div|p|table|tr|td|th|details|summary|br|hr|img)\b).*>\s*$", re.I)),
    ("front-matter", re.compile(r"^---\s*$")),
    # A setext heading's underline (the text above it is the heading)
    ("setext-underline", re.compile(r"^\s{0,3}=+\s*$")),
    # "[^1]: The guide explains...": a footnote's label is markup, its text is prose
    ("footnote", re.compile(r"^(?P<markup>\s{0,3}\[\^[^\]\n]+\]:\s*)(?P<text>.*\S)\s*$")),
    # "[label]: https://... "title"": what reference links point to, kept byte for byte
    ("link-definition", re.compile(r"^\s{0,3}\[[^\]\n]+\]:\s*\S")),
)
# A paragraph whose lines (all but the last) are at least this long was wrapped for width, so it
# is one text; shorter lines (addresses, verses, lists without markers) are kept line by line.
WRAPPED_LINE_MIN = 40


# Front matter (YAML's ---, Hugo's TOML +++) at the very start is metadata: its opening line and
# the lines that may close it.
FRONT_MATTER = {"---": ("---", "..."), "+++": ("+++",)}
BOM = "\ufeff"
QUOTE_PREFIX = re.compile(r"^(?:\s{0,3}>\s?)+")
LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])\s+")


def _indent(body: str) -> int:
    return len(body.expandtabs(4)) - len(body.expandtabs(4).lstrip())


def _closes(fence: re.Match[str], body: str, opened: str, max_indent: int) -> bool:
    """Whether `body`, a fence line, closes the fence `opened`: the same character, as long or
    longer, nothing after it, and indented at most `max_indent` columns. A deeper one is the code's
    own text (a Markdown example of a list item's fence): closing there, the code after it went to
    the model and the rest of the document was kept as code, untranslated."""
    marks = fence.group(1)
    return (
        marks[0] == opened[0]
        and len(marks) >= len(opened)
        and not body.strip()[len(marks) :].strip()
        and _indent(body) <= max_indent
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
    """Markdown's blocks line by line: each line either continues a block it is in (a fence, a raw
    HTML block, a blockquote's fence), is kept (code, blank lines), or is markup and text."""

    def __init__(self, pieces: list[Piece], indented_code: bool = True):
        self.pieces = pieces
        self.indented_code = indented_code
        self.paragraph: list[str] = []
        self.in_fence: str | None = None
        self.fence_indent = 0  # how far the line closing in_fence may be indented (its container's)
        self.in_raw_html: re.Pattern[str] | None = None  # what ends the raw HTML block ("-->", "</script>")
        # A GFM table's rows run from its delimiter row to a blank line or another block.
        self.in_table = False
        self.previous_row: str | None = None  # the line before, when it was a table row ("| a | b |")
        self.quote_fence: str | None = None  # a fence opened inside a blockquote: it ends with the quote
        # The content column of the list item the lines are in: its code starts 4 columns further
        # in, and its fences and continuation paragraphs are indented to it.
        self.list_indent: int | None = None
        self.previous_blank = True

    def flush_paragraph(self) -> None:
        if self.paragraph:
            self.pieces.extend(_paragraph_pieces(self.paragraph))
            self.paragraph.clear()

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
        if self._continues_fence(body) or self._continues_raw_html(body) or self._in_quoted_code(body):
            self.keep(line)
            return
        indent = _indent(body)
        self._leave_list_if_out_of_it(body, indent)
        fence = FENCE_RE.match(body)
        if fence and indent <= 3 + (self.list_indent or 0):
            self.in_fence = fence.group(1)
            self.fence_indent = 3 + (self.list_indent or 0)
            self.keep(line)
        elif not body.strip():
            self.keep(line, blank=True)
        elif (
            self.indented_code and self.previous_blank and not self.paragraph and indent >= 4 + (self.list_indent or 0)
        ):
            # Indented code is 4 columns past the text it belongs to: inside a list item, its
            # content column, so a list item's indented second paragraph is prose, not code.
            self.keep(line, blank=True)
        else:
            self._text_line(line, body)

    def _continues_fence(self, body: str) -> bool:
        if self.in_fence is None:
            return False
        fence = FENCE_RE.match(body)
        if fence and _closes(fence, body, self.in_fence, self.fence_indent):
            self.in_fence = None
        return True

    def _continues_raw_html(self, body: str) -> bool:
        searched_from = 0
        if self.in_raw_html is None:
            opened = opened_html_block(body)
            if opened is None:
                return False
            self.in_raw_html, searched_from = opened
        if self.in_raw_html.search(body, searched_from):
            self.in_raw_html = None
        return True

    def _in_quoted_code(self, body: str) -> bool:
        """Whether a blockquote line is to be kept: a blank one, or a fence in the quote and its code."""
        quote = QUOTE_PREFIX.match(body)
        if quote is None:
            self.quote_fence = None
            return False
        content = body[quote.end() :]
        fence = FENCE_RE.match(content)
        if self.quote_fence is not None:
            if fence and _closes(fence, content, self.quote_fence, 3):
                self.quote_fence = None
            return True
        if fence and _indent(content) <= 3:
            self.quote_fence = fence.group(1)
            return True
        return not content.strip()  # a quote's blank line ("> "): nothing to translate

    def _leave_list_if_out_of_it(self, body: str, indent: int) -> None:
        """After a blank line, a line left of the item's content column (not an item) ends the list."""
        if self.list_indent is None or not self.previous_blank or not body.strip():
            return
        if indent < self.list_indent and not LIST_MARKER.match(body):
            self.list_indent = None

    def _text_line(self, line: str, body: str) -> None:
        kind, match = _block_kind(body)
        if self.in_table and kind is None:
            kind = "table-row"  # a GFM row needs no pipe at either end, nor any pipe at all
        elif self.in_table and kind not in ("table-row", "table-separator"):
            self.in_table = False  # another block (a heading, a quote, a list) ends the table
        elif kind == "table-separator" and not self.in_table:
            self._open_table(body)
        self.previous_row = body if kind == "table-row" else None
        if kind == "list-item":
            marker = LIST_MARKER.match(body)
            self.list_indent = len(marker.group(0).expandtabs(4)) if marker else None
        if kind is None:
            self.paragraph.append(line)
        else:
            self.flush_paragraph()
            self.pieces.extend(_block_pieces(kind, match, line, body))
        self.previous_blank = False

    def _open_table(self, delimiter: str) -> None:
        """A delimiter row under a header row (the paragraph's last line, or a row with outer pipes)
        starts a table: the header's cells are translated one by one, not as a line of prose."""
        header_line = self.paragraph[-1] if self.paragraph else None
        header = header_line.rstrip("\r\n") if header_line is not None else self.previous_row
        if header is None or not opens_table(header, delimiter):
            return
        if header_line is not None:
            self.paragraph.pop()
            self.flush_paragraph()
            self.pieces.extend(_block_pieces("table-row", None, header_line, header))
        self.in_table = True


def _block_kind(body: str) -> tuple[str | None, re.Match[str] | None]:
    for kind, pattern in BLOCK_LINE_PATTERNS:
        match = pattern.match(body)
        if match:
            return kind, match
    return None, None


# Blocks that hold other blocks: what follows a quote's ">" or a list item's marker is read as a
# line of its own ("> - item", "- > quote", "> ### heading"), so its markup is kept too.
CONTAINERS = ("list-item", "quote")


def _block_pieces(kind: str, match: re.Match[str] | None, line: str, body: str) -> list[Piece]:
    return [*_shape_pieces(kind, match, body), Piece(line[len(body) :], False)]


def _shape_pieces(kind: str, match: re.Match[str] | None, body: str) -> list[Piece]:
    """A line of a known shape (without its line ending): its markup kept, its text translated."""
    if kind in ("heading", "list-item", "quote", "footnote") and match is not None:
        markup, text = match.group("markup"), match.group("text")
        tail = body[match.end("text") :]
        inner = _contents_pieces(text) if kind in CONTAINERS else _translatable_with_edges(text)
        return [Piece(markup, False), *inner, Piece(tail, False)]
    if kind == "table-row":
        return _table_cells(body)
    return [Piece(body, False)]


def _contents_pieces(text: str) -> list[Piece]:
    """What a container's marker is followed by: a block of its own, or text."""
    kind, match = _block_kind(text)
    return _translatable_with_edges(text) if kind is None else _shape_pieces(kind, match, text)


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


def _translatable_with_edges(text: str, wrapped: bool = False) -> list[Piece]:
    """Whitespace around a translatable text is markup too (table cell padding, indentation), and so
    is a backslash that ends it: a hard line break, which the model dropped (an odd run of
    backslashes; an even one is escaped backslashes)."""
    core = text.strip()
    if (len(core) - len(core.rstrip("\\"))) % 2:
        core = core[:-1].rstrip()
    if not core:
        return [Piece(text, False)]
    start = text.index(core)
    pieces = [Piece(text[:start], False), Piece(core, True, wrapped), Piece(text[start + len(core) :], False)]
    return [p for p in pieces if p.text]


def _paragraph_pieces(lines: list[str]) -> list[Piece]:
    """A paragraph wrapped for width is one text; else each line is, but lines that a link, a code
    span or an HTML tag runs over are one (paragraph_lines.py), and lines that hold nothing but HTML
    tags are kept as they are."""
    bodies = [line.rstrip("\r\n") for line in lines]
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
        text = "".join(group)
        body = text.rstrip("\r\n")
        if only_markup(body):
            pieces.append(Piece(text, False))
            continue
        pieces.extend(_translatable_with_edges(body, wrapped=len(group) > 1))
        pieces.append(Piece(text[len(body) :], False))
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


def rewrap(text: str, n_lines: int, indent: str = "", newline: str = "\n", whole: Iterable[str] = ()) -> str:
    """`text` on exactly `n_lines` lines of similar width (a wrapped paragraph stays wrapped).

    Each of `whole` (spans with line breaks of their own) found in `text` is kept as it is, its
    lines counted among the `n_lines`.
    """
    stand_ins: dict[str, str] = {}
    for span in whole:
        if span in text:  # wrapped as a word without spaces, then put back
            stand_in = f"\x00{len(stand_ins)}\x00"
            text = text.replace(span, stand_in, 1)
            stand_ins[stand_in] = span
            n_lines -= len(span.splitlines()) - 1
    wrapped = _rewrap(text, n_lines, indent, newline)
    for stand_in, span in stand_ins.items():
        wrapped = wrapped.replace(stand_in, span)
    return wrapped


def _rewrap(text: str, n_lines: int, indent: str, newline: str) -> str:
    words = text.split()
    if n_lines <= 1 or len(words) <= 1:
        return text
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
    return (newline + indent).join(lines)


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
        last_word = re.search(r"(\S+)\.$", before)
        if last_word and (
            last_word.group(1).casefold().strip("(") in ABBREVIATIONS or re.fullmatch(r"[A-Z]", last_word.group(1))
        ):
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
