"""HTML pages as units to translate, with the document byte-identical outside the translated text.

The standard library's tokenizer (html.parser, the same rules as browsers for where a tag, a
comment or a script ends) tells where each token starts; each token runs to the next one's
start, so the page is cut into exact slices and rebuilt from them. A library that builds a tree
(lxml, BeautifulSoup) serializes the page its own way, re-quoting attributes and re-encoding
entities, which would change bytes nobody asked to change.

What is translated: runs of text with the inline markup inside them (<b>, <a>, <em>, <span>...)
as one unit, so a sentence with a link in it is translated as one sentence; the markup, entities
and inline <code>/<kbd> elements become protected spans (stand-ins the translator keeps, put
back byte for byte). Block tags, <br> and comments end a run. Attribute values meant for people
(alt, title, placeholder, aria-label) are units of their own. Scripts, styles, <pre>, <xmp>,
<code>, <textarea>, <svg> and <math> are not touched, nor is any element marked translate="no" (HTML's
own mark for a name, a product, a sentence to keep as written: its text and its attributes),
which inside a sentence is one protected span of it, but for an element inside it marked
translate="yes", translated again with what it holds (HTML's translate is inherited, and an
element's own value wins); where the page leaves out an end tag, these end where HTML ends them
(_OpenElements: HTML's stack of open elements, as far as what a tag ends; a </ul> ends the <p>
left open in the list, a </div> with no <div> open ends nothing).
The root <html> element's lang (and xml:lang) is given the target language's code, which the page
is in once translated; a `lang` on an inner element marks a passage in another language and stays.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.translate.file_job import Unit
from llamadesk.app.translate.languages import Language, find_language
from llamadesk.app.translate.segment import SegmentResult

# Elements whose content is never translated; the tag names are lower-cased by the tokenizer.
UNTOUCHED = frozenset(
    {"script", "style", "pre", "xmp", "code", "kbd", "samp", "var", "textarea", "svg", "math", "template"}
)
# Inline elements that may sit inside a sentence: they do not end a run of text.
INLINE = frozenset(
    {
        "a",
        "abbr",
        "b",
        "bdi",
        "bdo",
        "cite",
        "data",
        "del",
        "dfn",
        "em",
        "font",
        "i",
        "ins",
        "mark",
        "q",
        "s",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "time",
        "u",
    }
)
# Untouched elements that may still sit inside a sentence: the whole element is one protected span.
INLINE_UNTOUCHED = frozenset({"code", "kbd", "samp", "var"})
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"})
# Foreign elements: inside them a "/>" closes an element, as in XML.
FOREIGN = frozenset({"svg", "math"})
TRANSLATED_ATTRIBUTES = frozenset({"alt", "title", "placeholder", "aria-label"})
# On the root <html> element: the page's language, which translating changes.
LANGUAGE_ATTRIBUTES = frozenset({"lang", "xml:lang"})

# One attribute in a start tag, consumed left to right so a value is never mistaken for a name.
_COMMENT_END = re.compile(r"--!?>")
# A table's parts, which HTML ignores outside a <table>.
_TABLE_PARTS = frozenset({"caption", "col", "colgroup", "td", "th", "tr", "tbody", "thead", "tfoot"})
_ATTRIBUTE = re.compile(r"""\s*([^\s"'>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]+))?""")
_STAND_IN = re.compile(r"\{\{§(\d+)\}\}")  # protected as a template tag; "§" keeps it apart from real templates
_WORDS = re.compile(r"[^\W\d_]")
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]+)""", re.IGNORECASE)


@dataclass
class _Attribute:
    start: int  # the value's slice in the tag's raw text, quotes included
    end: int
    quote: str  # '"', "'" or "" (unquoted)
    unit: int


@dataclass
class _Tag:
    """A start tag whose translatable attribute values are units."""

    raw: str
    attributes: list[_Attribute]

    def render(self, results: Sequence[SegmentResult]) -> str:
        out, position = [], 0
        for attribute in self.attributes:
            result = results[attribute.unit]
            if result.translation == result.source:  # unchanged: the value keeps its bytes
                continue
            value = result.translation
            quote = attribute.quote or '"'  # a translated value may have spaces: it needs quotes
            escaped = html.escape(value, quote=False).replace(quote, "&quot;" if quote == '"' else "&#x27;")
            out += [self.raw[position : attribute.start], quote, escaped, quote]
            position = attribute.end
        out.append(self.raw[position:])
        return "".join(out)


@dataclass
class _Run:
    """A run of text and inline markup translated as one unit."""

    kept: list[str | _Tag]  # what stand-in n stands for: raw markup, entities, inline code
    unit: int
    original: list[str | _Tag]  # the run as it is in the page (tags may still get translated attributes)

    def render(self, results: Sequence[SegmentResult]) -> str:
        translation = results[self.unit].translation
        if translation == results[self.unit].source:  # unchanged (a name, the same language): as it was
            return "".join(part.render(results) if isinstance(part, _Tag) else part for part in self.original)
        pieces = _STAND_IN.split(translation)
        out = []
        for i, piece in enumerate(pieces):
            if i % 2 == 0:
                # Text the model wrote: escaped, so a "<" or "&" it used cannot become markup.
                out.append(html.escape(piece, quote=False))
            else:
                n = int(piece)
                kept = self.kept[n - 1] if 1 <= n <= len(self.kept) else ""
                out.append(kept.render(results) if isinstance(kept, _Tag) else kept)
        return "".join(out)


@dataclass
class HtmlFile:
    pieces: list[str | _Tag | _Run]  # the whole document, in order
    units: list[Unit] = field(default_factory=list)
    _runs: dict[int, _Run] | None = field(default=None, repr=False)  # unit index -> its run, for readable()

    def render(self, results: Sequence[SegmentResult]) -> str:
        return "".join(p if isinstance(p, str) else p.render(results) for p in self.pieces)

    def readable(self, index: int, text: str) -> str:
        """`text` about unit `index` with its stand-ins shown as the page's own markup (`{{§1}}` -> `<b>`)."""
        if self._runs is None:  # built once: a page may have many thousand units
            self._runs = {p.unit: p for p in self.pieces if isinstance(p, _Run)}
        run = self._runs.get(index)
        if run is None:  # an attribute value: no stand-ins
            return text

        def markup(match: re.Match[str]) -> str:
            n = int(match.group(1))
            if not 1 <= n <= len(run.kept):
                return match.group(0)
            kept = run.kept[n - 1]
            return kept.raw if isinstance(kept, _Tag) else kept

        return _STAND_IN.sub(markup, text)


class _Tokens(HTMLParser):
    """(kind, start offset, tag) of every token; each runs to where the next one starts."""

    # Text to their end tag, as HTML reads them; html.parser knows only script and style, and read
    # an <xmp>'s example markup as the page's (its text went to the model), a "</div>" in a
    # <textarea> as an end tag.
    CDATA_CONTENT_ELEMENTS = ("script", "style", "xmp", "textarea")

    def __init__(self, text: str):
        super().__init__(convert_charrefs=False)
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.tokens: list[tuple[str, int, str]] = []
        self._foreign = 0  # open <svg> and <math>, where a "/>" does close an element
        self._tables = 0  # open <table>s: outside one, HTML ignores a table's parts
        self.doctype: str | None = None  # the page's <!DOCTYPE ...>, when it comes before any element
        self._elements_seen = False

    def _add(self, kind: str, tag: str = "") -> None:
        line, column = self.getpos()
        self.tokens.append((kind, self.line_starts[line - 1] + column, tag))

    def handle_starttag(self, tag, attrs):
        self._elements_seen = True
        if tag in FOREIGN:
            self._foreign += 1
        elif tag == "table":
            self._tables += 1
        elif tag in _TABLE_PARTS and not self._tables and not self._foreign:
            # Ignored by HTML outside a table: kept as written, and it ends no element (a <td> in a
            # <p translate="no"> ended the paragraph, and the kept text after it went to the model).
            self._add("other")
            return
        self._add("start", tag)

    def handle_startendtag(self, tag, attrs):
        if tag in VOID or tag in FOREIGN or self._foreign:
            self._add("startend", tag)
            return
        # HTML ignores the "/" of any other element: <script/> and <pre/> open a script and a
        # <pre> that run to their end tags, <div translate="no"/> a kept <div>. Read as empty
        # elements, their content was sent to the model (a script's code came back translated).
        self._add("start", tag)
        if tag in self.CDATA_CONTENT_ELEMENTS:
            self.set_cdata_mode(tag)  # what html.parser does after a start tag without the slash

    def handle_endtag(self, tag):
        if tag in FOREIGN and self._foreign:
            self._foreign -= 1
        elif tag == "table" and self._tables:
            self._tables -= 1
        elif tag in _TABLE_PARTS and not self._tables and not self._foreign:
            self._add("other")
            return
        self._add("end", tag)

    def handle_data(self, data):
        self._add("data")

    def handle_entityref(self, name):
        self._add("entity")

    def handle_charref(self, name):
        self._add("entity")

    def parse_comment(self, i, report=True):
        # HTML's comments where html.parser's differ: "<!-->" and "<!--->" are whole (empty)
        # comments, and "--!>" ends one as "-->" does. html.parser read on to the next "-->", or
        # sent "<!-->" and the text after it to the model as text.
        for empty in ("<!-->", "<!--->"):
            if self.rawdata.startswith(empty, i):
                if report:
                    self.handle_comment("")
                return i + len(empty)
        end = _COMMENT_END.search(self.rawdata, i + 4)
        if end is None:
            return -1
        if report:
            self.handle_comment(self.rawdata[i + 4 : end.start()])
        return end.end()

    def handle_comment(self, data):
        self._add("other")

    def handle_decl(self, decl):
        if not self._elements_seen and self.doctype is None and decl[:7].lower() == "doctype":
            self.doctype = decl
        self._add("other")

    def handle_pi(self, data):
        self._add("other")

    def unknown_decl(self, data):
        self._add("other")


def read_html(data: bytes, name: str, target: Language | None = None) -> HtmlFile:
    """The page's text for people as units, its root's lang saying `target` (None: as it is);
    BadInputError for a page that is not UTF-8 or has no such text."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInputError(f"{name} is not UTF-8; convert it to UTF-8 first (e.g. with iconv)") from None
    declared = _CHARSET.search(data[:4096])
    if declared and declared.group(1).decode("ascii", "replace").lower() not in ("utf-8", "utf8"):
        charset = declared.group(1).decode("ascii", "replace")
        raise BadInputError(f"{name} declares charset {charset}; convert it to UTF-8 first (and its <meta charset>)")
    tokens = _Tokens(text)
    tokens.feed(text)
    unfinished = tokens.rawdata  # what html.parser holds back at the end: an open tag or comment
    if unfinished.startswith("<"):
        # The page ends inside a tag or a comment. HTML drops such a tag and runs such a comment
        # to the end of the file: nothing readers see. html.parser's close() instead turned it into
        # text (a hidden draft in an unclosed <!-- went to the model and came back visible), and
        # took time quadratic in its length (a page of 250,000 "<!--" did not finish in minutes).
        tokens.tokens.append(("other", len(text) - len(unfinished), ""))
    else:
        tokens.close()
    try:
        document = _Builder(text, tokens.tokens, target, quirks=in_quirks_mode(tokens.doctype)).build()
    except _NestedTooDeep as err:
        raise BadInputError(
            f"{name} nests more than {MAX_NESTING} {err} inside each other, which no page needs; "
            "check that it is the page you meant to translate"
        ) from None
    if not document.units:  # as for an empty .srt or .po: say so rather than write a copy
        raise BadInputError(f"{name} has no text for people to translate (scripts, styles, code and numbers are kept)")
    return document


# How deep kept and translate-marked elements (and lists or tables inside a kept one) may nest.
# Each token looks at every one open, so a page nesting them by the thousand took minutes (12,000
# <div translate="no"><div translate="yes"> pairs: 69 s); real pages nest a handful.
MAX_NESTING = 512


class _NestedTooDeep(Exception):
    """A page nesting more than MAX_NESTING of what the reader keeps track of."""


@dataclass
class _Region:
    """An open element whose content is not translated as the page's text around it is.

    "kept": a block kept as written (<pre>, a translate="no" <div>); "span": an element inside a
    sentence kept as one protected span of it (inline <code>, a translate="no" <span>); "yes": an
    element marked translate="yes" inside a translate="no" one, translated again as HTML says.
    """

    kind: str
    tag: str
    # Whether an element inside marked translate="yes" is translated again: in a translate="no"
    # element, but never in <pre>, <code>, <script>..., which are left alone whatever they say.
    reopens: bool = False
    span_from: int | None = None  # a "span": where its bytes not yet in the run begin (None: an outer span's)
    depth: int = 1  # open elements of its tag, itself included (a <div> in a kept <div>)
    holders: list[str] = field(default_factory=list)  # a list open in a list item: its <li> are not ours
    opened_at: int = -1  # its position among the open elements (_OpenElements)

    def ended_by(self, kind: str, tag: str, ends_from: int, reopened_up_to: int) -> bool:
        """Whether a `kind` token of `tag`, which ends the open elements from position `ends_from`
        in, ends this one without its end tag; `reopened_up_to`: the innermost open cell's position."""
        if ends_from > self.opened_at or (kind == "end" and tag == self.tag and ends_from == self.opened_at):
            return False  # still open, or this is its own end tag, which `depth` counts
        # An unclosed <span> ends with its paragraph; an unclosed <b>, HTML opens again after it
        # (a copy, translate="no" and all), but not past the end of a table cell.
        return self.tag not in FORMATTING or ends_from <= reopened_up_to < self.opened_at

    def count(self, kind: str, tag: str) -> None:
        """Keep track of what the token opens or closes inside this element."""
        if kind == "start" and tag in _NESTED_HOLDERS.get(self.tag, ()):
            self.holders.append(tag)
            if len(self.holders) > MAX_NESTING:
                raise _NestedTooDeep(f"<{tag}>")
        elif kind == "end" and tag in self.holders:  # ends what it holds too (a <tbody> left open)
            del self.holders[len(self.holders) - 1 - self.holders[::-1].index(tag) :]
        elif tag == self.tag and not self.holders and kind in ("start", "end"):
            self.depth += 1 if kind == "start" else -1


class _Builder:
    def __init__(self, text: str, tokens: list[tuple[str, int, str]], target: Language | None, quirks: bool = False):
        self.text = text
        self.tokens = tokens
        # What the root <html>'s lang is to say: the first <html> start tag's, then None (None from
        # the start: as it is).
        self.root_language = target
        self.document = HtmlFile([])
        self.run: list[tuple[str, str | _Tag]] = []  # ("text", raw) or ("kept", raw/tag)
        self.regions: list[_Region] = []  # open elements not translated as the page's text, innermost last
        self.open_elements = _OpenElements(quirks)

    def build(self) -> HtmlFile:
        bounds = [start for _, start, _ in self.tokens] + [len(self.text)]
        if bounds[0] > 0:  # text before the first token cannot happen, but keep it if it does
            self.document.pieces.append(self.text[: bounds[0]])
        for i, (kind, start, tag) in enumerate(self.tokens):
            raw = self.text[start : bounds[i + 1]]
            if len(self.regions) > MAX_NESTING:
                raise _NestedTooDeep("elements marked translate or kept as written")
            ends_from = self.open_elements.ended_by(kind, tag)
            self._end_regions_closed_by(kind, tag, start, ends_from)
            self.open_elements.update(kind, tag, ends_from)
            # An end tag HTML ignores (a </div> in a table cell, for a <div> around the table) ends
            # nothing: counted, it ended a kept <div> and sent the rest of it to the model. A <b> or
            # <a> is the exception: HTML opens it again after the block that ended it (see
            # _Region.ended_by), so its own end tag still ends it where the stack has let it go.
            ignored = kind == "end" and ends_from is None
            for region in self.regions:
                if not ignored or region.tag in FORMATTING:
                    region.count(kind, tag)
            ended = next((n for n, region in enumerate(self.regions) if region.depth == 0), None)
            if ended is not None:  # this is its end tag (and it ends whatever it still holds open)
                self._end_regions(ended + 1, start)
                self._end_region(raw, bounds[i + 1])
                continue
            region = self.regions[-1] if self.regions else None
            if region is None or region.kind == "yes":
                self._page_token(kind, start, tag, raw)
            elif region.kind == "kept":
                self._kept_token(region, kind, tag, raw)
            else:
                self._span_token(region, kind, start, tag, raw, bounds[i + 1])
        self._end_regions(0, len(self.text))  # elements never closed (an inline <code>): kept as they are
        self._flush()
        return self.document

    def _page_token(self, kind: str, start: int, tag: str, raw: str) -> None:
        """A token of the page's own text: a run goes on or ends, an untouched element begins."""
        if kind in ("start", "startend") and _translate_mark(raw) == "no":
            if kind == "start" and tag in INLINE:  # in a sentence: the whole element is one kept span
                self._open_region(_Region("span", tag, reopens=True, span_from=start))
            elif kind == "start" and tag not in VOID:  # a block: left as it is, to its end
                self._flush()
                self.document.pieces.append(raw)
                self._open_region(_Region("kept", tag, reopens=True))
            else:  # an element without content (<img translate="no" alt="...">): its attributes kept
                self._flush()
                self.document.pieces.append(raw)
            return
        if kind == "start" and tag in INLINE_UNTOUCHED:
            # Part of the sentence around it, as one protected span (a run with no words
            # around it is written back as it was).
            self._open_region(_Region("span", tag, span_from=start))
        elif kind == "start" and tag in UNTOUCHED:  # <pre>, <script>...: ended by their end tag only
            self._flush()
            self.document.pieces.append(self._tag(raw))
            self._open_region(_Region("kept", tag))
        elif kind in ("data", "entity"):
            self.run.append(("text" if kind == "data" else "kept", raw))
        elif kind in ("start", "startend", "end") and tag in INLINE:
            self.run.append(("kept", self._tag(raw) if kind != "end" else raw))
        else:  # block tags, <br>, comments, declarations: the run ends here
            self._flush()
            if kind in ("start", "startend") and tag == "html" and self.root_language is not None:
                raw, self.root_language = _in_language(raw, self.root_language), None
            self.document.pieces.append(self._tag(raw) if kind in ("start", "startend") else raw)

    def _kept_token(self, region: _Region, kind: str, tag: str, raw: str) -> None:
        """A token inside a block kept as written: as it is, unless it begins an element to translate."""
        if _translated_again(region, kind, tag, raw):
            self.document.pieces.append(self._tag(raw))  # its own attributes are translated too
            if kind == "start" and tag not in VOID:
                self._open_region(_Region("yes", tag))
            return
        self.document.pieces.append(raw)
        if region.reopens and kind == "start" and tag in UNTOUCHED:  # kept even where a tag inside says yes
            self._open_region(_Region("kept", tag))

    def _span_token(self, region: _Region, kind: str, start: int, tag: str, raw: str, end: int) -> None:
        """A token inside an element kept as a span of its sentence: part of the span, unless it
        begins an element to translate, which then is part of the sentence."""
        if _translated_again(region, kind, tag, raw):
            self._keep_span_so_far(region, start)
            self.run.append(("kept", self._tag(raw)))
            if kind == "start" and tag not in VOID:
                self._open_region(_Region("yes", tag))
            else:
                region.span_from = end
        elif region.reopens and kind == "start" and tag in UNTOUCHED:  # kept even where a tag inside says yes
            self._open_region(_Region("span", tag))  # its bytes are the outer span's

    def _keep_span_so_far(self, region: _Region, end: int) -> None:
        """The span's bytes up to `end` not yet in the run become a kept span of it."""
        if region.span_from is not None and region.span_from < end:
            self.run.append(("kept", self.text[region.span_from : end]))
        region.span_from = None

    def _end_regions_closed_by(self, kind: str, tag: str, start: int, ends_from: int | None) -> None:
        """End the outermost region that the token ends without its end tag (a <li> ends the open
        translate="no" <li>, a </ul> the <p> left open in it), and every region inside it, before
        the token; `ends_from`: where the open elements the token ends begin (None: it ends none)."""
        if ends_from is None:
            return
        reopened_up_to = self.open_elements.innermost(_REOPENED_NOT_PAST)
        closed = next(
            (n for n, region in enumerate(self.regions) if region.ended_by(kind, tag, ends_from, reopened_up_to)),
            None,
        )
        if closed is not None:
            self._end_regions(closed, start)

    def _open_region(self, region: _Region) -> None:
        """`region` begins with the start tag just read, the innermost open element."""
        region.opened_at = len(self.open_elements) - 1
        self.regions.append(region)

    def _end_regions(self, outermost: int, at: int) -> None:
        """End the regions from `outermost` in, innermost first, without an end tag, at offset `at`."""
        while len(self.regions) > outermost:
            self._end_region("", at)

    def _end_region(self, end_tag: str, at: int) -> None:
        """End the innermost region with `end_tag` (empty when the page leaves it out), which ends at `at`."""
        region = self.regions.pop()
        outer = self.regions[-1] if self.regions else None
        if region.kind == "span":
            self._keep_span_so_far(region, at)
        elif region.kind == "yes" and outer is not None and outer.kind == "span":
            # translated inside a sentence: the sentence goes on, the outer span from here
            self.run += [("kept", end_tag)] if end_tag else []
            outer.span_from = at
        else:  # a kept block, or one translated inside it (its text a unit of its own)
            self._flush()
            self.document.pieces += [end_tag] if end_tag else []

    def _tag(self, raw: str) -> str | _Tag:
        """A start tag, as a _Tag if it has attribute values to translate."""
        attributes = []
        for match in _attributes(raw):
            value = match.group(2)
            if match.group(1).lower() in TRANSLATED_ATTRIBUTES and value:
                inner = _unquoted(value)
                quote = value[0] if len(inner) != len(value) else ""
                plain = html.unescape(inner)
                if _WORDS.search(plain):
                    self.document.units.append(Unit(" ".join(plain.split())))
                    attributes.append(_Attribute(match.start(2), match.end(2), quote, len(self.document.units) - 1))
        return _Tag(raw, attributes) if attributes else raw

    def _flush(self) -> None:
        """The run so far becomes a unit (its whitespace at both ends kept outside it), or stays as it was."""
        run, self.run = self.run, []
        if not run:
            return
        if not any(kind == "text" and _WORDS.search(str(value)) for kind, value in run):
            self.document.pieces += [value for _, value in run]
            return
        # Leading and trailing whitespace stays outside the unit, byte for byte.
        lead = trail = ""
        if run[0][0] == "text":
            value = str(run[0][1])
            lead, run[0] = value[: len(value) - len(value.lstrip())], ("text", value.lstrip())
        if run[-1][0] == "text":
            value = str(run[-1][1])
            trail, run[-1] = value[len(value.rstrip()) :], ("text", value.rstrip())
        kept: list[str | _Tag] = []
        text = []
        for kind, value in _literal_stand_ins_kept(run):
            if kind == "text":
                # One line for the model: how the page's source wraps its text carries no meaning.
                text.append(re.sub(r"\s+", " ", str(value)))
            else:
                kept.append(value)
                text.append(f"{{{{§{len(kept)}}}}}")
        self.document.units.append(Unit("".join(text), follows=True))
        run_piece = _Run(kept, len(self.document.units) - 1, [value for _, value in run])
        self.document.pieces += [p for p in (lead, run_piece, trail) if p != ""]


# Elements whose end tag HTML lets a page leave out, and the start tags that end one (an end tag
# ends it when it ends an element around it: see _OpenElements). A translate="no" <p> or <li>
# without its end tag kept the rest of the page from the model (and a list of them "had no text
# for people to translate").
_CLOSE_P = frozenset(
    "address article aside blockquote center dd details dialog dir div dl dt fieldset figcaption figure "
    "footer form h1 h2 h3 h4 h5 h6 header hgroup hr li listing main menu nav ol p plaintext pre search "
    "section summary table ul xmp".split()
)
# In a table, what ends a cell ends what is open in it too (a <p> or <li> without its end tag).
_CELL_STARTS = frozenset({"caption", "td", "th", "tr", "tbody", "thead", "tfoot"})
_SECTION_STARTS = frozenset({"caption", "tbody", "thead", "tfoot"})
IMPLIED_ENDS: dict[str, frozenset[str]] = {
    "p": _CLOSE_P | _CELL_STARTS,
    "li": frozenset({"li"}) | _CELL_STARTS,
    "dt": frozenset({"dt", "dd"}) | _CELL_STARTS,
    "dd": frozenset({"dt", "dd"}) | _CELL_STARTS,
    "td": _CELL_STARTS - {"caption"},
    "th": _CELL_STARTS - {"caption"},
    "tr": _SECTION_STARTS | {"tr"},
    "tbody": _SECTION_STARTS,
    "thead": _SECTION_STARTS,
    "tfoot": _SECTION_STARTS,
    "option": frozenset({"option", "optgroup"}),
    "optgroup": frozenset({"optgroup"}),
}
# What such an element may hold that has elements of its own kind (a list in a list item, a table
# in a cell): while one is open inside, a <li> or </ul> is the inner one's, not the outer's end.
_NESTED_HOLDERS = {
    "li": frozenset({"ul", "ol", "menu", "table"}),
    "dt": frozenset({"dl", "table"}),
    "dd": frozenset({"dl", "table"}),
    "td": frozenset({"table"}),
    "th": frozenset({"table"}),
    "tr": frozenset({"table"}),
    "tbody": frozenset({"table"}),
    "thead": frozenset({"table"}),
    "tfoot": frozenset({"table"}),
}
# HTML's special elements: an end tag of another element (a </span>) ends nothing outside one.
_SPECIAL = frozenset(
    "address applet area article aside base basefont bgsound blockquote body br button caption center col "
    "colgroup dd details dir div dl dt embed fieldset figcaption figure footer form frame frameset h1 h2 h3 "
    "h4 h5 h6 head header hgroup hr html iframe img input keygen li link listing main marquee menu meta nav "
    "noembed noframes noscript object ol p param plaintext pre script search section select source style "
    "summary table tbody td template textarea tfoot th thead title tr track ul wbr xmp "
    "foreignobject desc mi mo mn ms mtext annotation-xml".split()
)
# HTML's scopes: where a tag looks for the open element it ends, from the innermost out, and where
# it stops looking (an end tag in a table cell does not end a <div> around the table: HTML ignores it).
_SCOPE = frozenset({"applet", "caption", "html", "table", "td", "th", "marquee", "object", "template"})
_TABLE_SCOPE = frozenset({"html", "table", "template"})
# A <li>, <dt> or <dd> ends the open one unless a block other than a <div> is open inside it (a
# list in a list item: the <li> is the inner list's own).
_ITEM_SCOPE = _SPECIAL - {"address", "div", "p"}
_SCOPE_OF = {
    "p": _SCOPE | {"button"},
    "li": _ITEM_SCOPE,
    "dt": _ITEM_SCOPE,
    "dd": _ITEM_SCOPE,
    **dict.fromkeys(_CELL_STARTS | {"table"}, _TABLE_SCOPE),
    "option": _SCOPE | {"select", "datalist"},
    "optgroup": _SCOPE | {"select", "datalist"},
}
_END_TAG_SCOPE_OF = {**_SCOPE_OF, "li": _SCOPE | {"ol", "ul"}, "dt": _SCOPE, "dd": _SCOPE}
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# HTML keeps <body> and <html> open to the page's end, whatever end tags say.
_HOLDERS = frozenset({"body", "html"})
_CLOSED_BY_START = {
    start: frozenset(element for element, starts in IMPLIED_ENDS.items() if start in starts)
    for start in frozenset().union(*IMPLIED_ENDS.values())
}
# Formatting elements: where the text goes on after a block that ended them, HTML opens a copy
# (with the same attributes), except past the end of a cell, a caption, a template or an object.
FORMATTING = frozenset(
    {"a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong", "tt", "u"}
)
_REOPENED_NOT_PAST = frozenset({"td", "th", "caption", "template", "applet", "object", "marquee"})


class _OpenElements:
    """HTML's stack of open elements, as far as it tells what a tag ends: the elements it ends
    without their end tags (a </ul> ends the <li> and <p> open in the list), or none when HTML
    ignores it (a </div> with no <div> open). Each tag's positions are indexed, and those of the
    large groups scopes look for, so that a page nesting thousands deep is read in linear time."""

    def __init__(self, quirks: bool = False) -> None:
        self.quirks = quirks  # a page in quirks mode: a <table> does not end the <p> it is in
        self.tags: list[str] = []
        # tag, or group of tags -> where one is open, innermost last
        self._positions: dict[str | frozenset[str], list[int]] = {group: [] for group in (_SPECIAL, _ITEM_SCOPE)}

    def __len__(self) -> int:
        return len(self.tags)

    def innermost(self, tags: frozenset[str]) -> int:
        """The position of the innermost open element of one of `tags`; -1 when none is open."""
        if tags in self._positions:
            return self._positions[tags][-1] if self._positions[tags] else -1
        return max((self._positions[tag][-1] for tag in tags if self._positions.get(tag)), default=-1)

    def ended_by(self, kind: str, tag: str) -> int | None:
        """Where the open elements a `kind` token of `tag` ends begin (it ends every one from there
        in), or None when it ends none."""
        if kind in ("start", "startend"):
            closed = _CLOSED_BY_START.get(tag, frozenset())
            if self.quirks and tag == "table":
                closed = closed - {"p"}
            found = [self._in_scope(frozenset({element}), _SCOPE_OF[element]) for element in closed]
            if tag in _HEADINGS and self.tags and self.tags[-1] in _HEADINGS:  # <h2> right in an <h1>
                found.append(len(self.tags) - 1)
            return min((position for position in found if position is not None), default=None)
        if kind != "end" or tag in _HOLDERS:
            return None
        if tag not in _SPECIAL:  # a </span> or </b> looks no further than the innermost block
            return self._in_scope(frozenset({tag}), _SPECIAL)
        # any heading's end tag ends the open heading, as </h1> ends an <h3>
        return self._in_scope(_HEADINGS if tag in _HEADINGS else frozenset({tag}), _END_TAG_SCOPE_OF.get(tag, _SCOPE))

    def update(self, kind: str, tag: str, ends_from: int | None) -> None:
        """After a `kind` token of `tag` that ends the open elements from `ends_from` in (None: none)."""
        while ends_from is not None and len(self.tags) > ends_from:
            for key in self._keys(self.tags.pop()):
                self._positions[key].pop()
        if kind == "start" and tag not in VOID:
            for key in self._keys(tag):
                self._positions.setdefault(key, []).append(len(self.tags))
            self.tags.append(tag)

    def _keys(self, tag: str) -> list[str | frozenset[str]]:
        """Where an open `tag` is indexed: under its name and its groups."""
        return [tag] + [group for group in (_SPECIAL, _ITEM_SCOPE) if tag in group]

    def _in_scope(self, tags: frozenset[str], scope: frozenset[str]) -> int | None:
        """The innermost open element of `tags`, unless an element of `scope` is open inside it."""
        found = self.innermost(tags)
        return found if found >= 0 and self.innermost(scope) <= found else None


# Public identifiers of the old doctypes that put a page in quirks mode (HTML's list, the common part;
# compared in lower case, as prefixes), and those that do only without a system identifier.
_QUIRKS_PUBLIC = (
    "-//w3c//dtd html 3",
    "-//w3c//dtd html 4.0 transitional//",
    "-//w3c//dtd html 4.0 frameset//",
    "-//w3c//dtd w3 html//",
    "-//w3o//dtd w3 html",
    "-//ietf//dtd html",
    "-//netscape comm. corp.//dtd",
    "-//microsoft//dtd internet explorer",
    "-//webtechs//dtd mozilla html",
    "-//softquad",
    "-//sq//dtd html",
    "-//spyglass//dtd html",
    "-//o'reilly and associates//dtd html",
    "-//metrius//dtd metrius presentational//",
    "-//advasoft ltd//dtd html",
    "-//as//dtd html",
)
_QUIRKS_WITHOUT_SYSTEM_ID = ("-//w3c//dtd html 4.01 transitional//", "-//w3c//dtd html 4.01 frameset//")
_DOCTYPE = re.compile(
    r"""doctype\s+(\S+)(?:\s+public\s*(["'])(.*?)\2(?:\s*(["'])(.*?)\4)?)?""", re.IGNORECASE | re.DOTALL
)


def in_quirks_mode(doctype: str | None) -> bool:
    """Whether a browser reads the page in quirks mode: no doctype (a fragment, an old page), or an
    old one. It changes what ends what: there a <table> does not end the <p> it is in, so a table
    inside a <p translate="no"> is kept with it."""
    if doctype is None:
        return True
    found = _DOCTYPE.match(doctype.strip())
    if found is None or found.group(1).lower() != "html":
        return True
    public, system = (found.group(3) or "").lower(), found.group(5)
    if public.startswith(_QUIRKS_PUBLIC) or public in ("html", "-/w3c/dtd html 4.0 transitional/en"):
        return True
    return system is None and public.startswith(_QUIRKS_WITHOUT_SYSTEM_ID)


def _translated_again(region: _Region, kind: str, tag: str, raw: str) -> bool:
    """Whether a token inside `region` begins an element marked translate="yes" that is translated
    (HTML's translate is inherited, and an element's own value wins; <pre> and <code> stay kept)."""
    return region.reopens and kind in ("start", "startend") and tag not in UNTOUCHED and _translate_mark(raw) == "yes"


def _translate_mark(raw: str) -> str | None:
    """What a start tag's translate attribute says: "no", "yes" (also an empty value, as HTML
    reads it) or None (no such attribute, or a value HTML ignores: the element inherits)."""
    for match in _attributes(raw):
        if match.group(1).lower() != "translate":
            continue
        value = html.unescape(_unquoted(match.group(2) or ""))
        # HTML compares the value as it is, ignoring only ASCII case: " no " and "'no'" are
        # values it does not know, so the element inherits (they were read as "no").
        value = value.lower() if value.isascii() else value
        return value if value in ("yes", "no") else "yes" if value == "" else None
    return None


def _unquoted(raw_value: str) -> str:
    """An attribute's value as written, without the one pair of quotes around it (if any)."""
    if len(raw_value) >= 2 and raw_value[0] == raw_value[-1] and raw_value[0] in "\"'":
        return raw_value[1:-1]
    return raw_value


def _attributes(raw: str) -> Iterator[re.Match[str]]:
    """Each attribute of a start tag's raw text, left to right (group 1 its name, 2 its raw value)."""
    name = re.match(r"<[^\s/>]+", raw)
    if name is None:
        return
    position = name.end()
    while True:
        match = _ATTRIBUTE.match(raw, position)
        if not match or match.end() == position:
            slash = re.match(r"\s*/", raw[position:])
            if slash:  # a stray "/" between attributes
                position += slash.end()
                continue
            return
        position = match.end()
        yield match


def _in_language(raw: str, target: Language) -> str:
    """The root's start tag with its lang and xml:lang values saying `target`, in the same quotes;
    every other byte as it was. A value that names the language already (fr-CA for fr) stays."""
    out, position = [], 0
    for match in _attributes(raw):
        value = match.group(2)
        if match.group(1).lower() not in LANGUAGE_ATTRIBUTES or value is None:
            continue
        quoted = len(value) >= 2 and value[0] in "\"'" and value[-1] == value[0]
        if find_language(html.unescape(value[1:-1] if quoted else value)) == target:
            continue
        quote = value[0] if quoted else ""
        out += [raw[position : match.start(2)], quote, target.code, quote]
        position = match.end(2)
    out.append(raw[position:])
    return "".join(out)


def _literal_stand_ins_kept(run: list[tuple[str, str | _Tag]]) -> list[tuple[str, str | _Tag]]:
    """The run with any "{{§N}}" the page's own text holds made a kept span: read back as a
    stand-in, it was replaced by other markup or dropped (a page that documents the syntax)."""
    out: list[tuple[str, str | _Tag]] = []
    for kind, value in run:
        if kind != "text" or not _STAND_IN.search(str(value)):
            out.append((kind, value))
            continue
        position = 0
        for match in _STAND_IN.finditer(str(value)):
            out += [("text", str(value)[position : match.start()]), ("kept", match.group(0))]
            position = match.end()
        out.append(("text", str(value)[position:]))
    return [(kind, value) for kind, value in out if value != ""]
