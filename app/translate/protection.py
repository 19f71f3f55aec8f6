"""What must survive translation untouched, hidden from the model behind numbered markers.

Before a segment reaches the model, every span that must come out exactly as it went in
(placeholders, URLs, e-mail addresses, inline code, HTML tags, Markdown link targets and
emphasis marks) is replaced by a marker ⟦1⟧, ⟦2⟧, ...; the segment's leading and trailing
whitespace is set aside. Afterwards `restore` puts everything back and `missing_markers` says
what the model lost. Markers look like ⟦1⟧ because the gemma3-270m starter copies them through a
few-shot prompt more reliably than [1], {1}, <1>, #1 or X1 (tried on a handful of UI sentences
while building this: the tiny model dropped or mistranslated the others now and then).

Glossary terms ride on the same machinery: a term can be protected so that its marker is
restored as the required translation instead of the original text.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from llamadesk.app.translate.markdown_links import INLINE_TARGET, REFERENCE_TARGET

MARKER_RE = re.compile(r"⟦(\d+)⟧")

# printf: Python's %(name)s, POSIX positional %1$d, plain %s / %-5.2f / %lld / %@ and %%
PRINTF = (
    r"%\([A-Za-z_][A-Za-z0-9_]*\)[-#0+]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]"
    r"|%\d+\$[-#0+']*\d*(?:\.\d+)?(?:hh|h|ll|l|L|q|j|z|t)?[diouxXeEfFgGcspn@]"
    r"|%[-#0+']*\d*(?:\.\d+)?(?:hh|h|ll|l|L|q|j|z|t)?[diouxXeEfFgGcspn@](?![A-Za-z])|%%"
)
# str.format / ICU / i18next: {0}, {name}, {0:.2f}, {user.name}, {}, ${name}
FORMAT = r"\$?\{[A-Za-z0-9_.\[\]]*(?:[!:][^{}\s]*)?\}"

# The end of a Markdown link's text and its target: "](url)", "](url "title")", "](<a b.pdf>)",
# "][ref]" (markdown_links.py has every form CommonMark allows).
LINK_CLOSE = rf"\]{INLINE_TARGET}|\]{REFERENCE_TARGET}"
# Markdown's autolinks: <scheme:anything without spaces> and <an@e-mail.address>; the e-mail
# pattern alone kept the address but the model dropped the angle brackets, and the link.
AUTOLINK = (
    r"<[A-Za-z][A-Za-z0-9+.-]{1,31}:[^<>\s]*>"
    r"|<[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?>"
)

# (kind, pattern), tried in this order at each position: the first kind that matches there wins,
# so the longer, more specific shapes come first. Knowledge as data: a new kind of span is a row.
SPAN_PATTERNS: tuple[tuple[str, str], ...] = (
    # Every pattern here takes time linear in the text: an opener it cannot close ("<!--", "{{",
    # "⟦") is scanned only up to the next opener of its kind, not to the end of the text each time.
    # text that already looks like one of our markers must not be mistaken for one
    ("marker-lookalike", r"⟦[^⟦⟧\n]*⟧"),
    # A Markdown backslash escape ("\|" in a table cell, "\*" that is not emphasis): the model
    # dropped the backslash, and the table gained a column
    ("markdown-escape", r"\\[!-/:-@\[-`{-~]"),
    # A code span opens and closes with backtick runs of one length ("```grep x``` here": a run of
    # two inside is the code's); a run that no run of its length closes is literal backticks. It
    # may run over a line break (not a blank line): a paragraph is cut into lines only outside
    # one, and the span is kept with its line break, byte for byte.
    ("inline-code", r"(?<!`)(?P<ticks>`+)(?!`)(?:[^`\n]|\n(?![ \t]*\n)|(?!(?P=ticks)(?!`))(?>`+))+?(?P=ticks)(?!`)"),
    # A Markdown link or image is cut into what opens its text ("[", "![") and what closes it with
    # its target ("](url)", "][ref]"): the text between is translated, and the link's syntax is
    # two markers the model cannot put a space into ("[the docs] (url)" is no longer a link).
    ("link-open", rf"!?\[(?=(?:[^\[\]]|\[[^\[\]]*\])+(?:{LINK_CLOSE}))"),
    ("link-target", LINK_CLOSE),
    # A shortcut reference "[label]" (or "[label][]") is the label its definition is found by: kept.
    ("link-reference", r"\[[^\[\]\n]+\](?:\[\])?(?![(\[])"),
    ("autolink", AUTOLINK),
    ("template-tag", r"\{\{(?:(?!\{\{).)*?\}\}|\{%(?:(?!\{%).)*?%\}"),
    # HTML's tags, comments and entities; WebVTT's tags too: classes (<c.yellow>), voices (<v Ann>).
    # A tag's attributes are one greedy run up to its ">": `(?:\s+[^<>]*?)?` tried every split of a
    # long run of spaces against every length after it (69 s for "<div" and 30,000 spaces).
    (
        "html-tag",
        r"</?[A-Za-z][A-Za-z0-9-]*(?:\.[\w-]+)*(?:\s[^<>]*)?/?>|<!--(?:(?!<!--).)*?-->|&(?:[a-z]+|#\d+|#x[0-9a-fA-F]+);",
    ),
    # Subtitle markup: WebVTT's karaoke timestamps (<00:00:03.500>), SubRip's SSA override tags ({\an8})
    ("subtitle-tag", r"<(?:\d+:)?\d{2}:\d{2}\.\d{3}>|\{\\[^{}\n]*\}"),
    ("url", r"\b(?:https?|ftp)://[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]]|\bwww\.[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]]"),
    ("email", r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
    # A placeholder in quotes (“%(value)s”) travels with its quotes: a small model given a marker
    # between quotes tends to copy the whole sentence or drop the marker.
    ("quoted-placeholder", rf"[“‘«„\"](?:{PRINTF}|{FORMAT})[”’»“\"]"),
    ("printf", PRINTF),
    ("format", FORMAT),
    # Pandoc/kramdown/Hugo attributes after a heading, "{#getting-started .unnumbered}": the id is
    # the anchor that links point to
    ("attributes", r"\{[#.][^{}\n]*\}"),
    # Markdown emphasis and strikethrough marks: the words inside are translated. Runs of three
    # (strong and emphasis at once) first: "***" was cut into "**" and a lone "*" that went to the model.
    ("emphasis", r"\*\*\*|\*\*|___|__|~~|(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*])|(?<![\w_])_(?=\S)|(?<=\S)_(?![\w_])"),
)

_SCANNER = re.compile("|".join(f"(?P<k{i}>{pattern})" for i, (_, pattern) in enumerate(SPAN_PATTERNS)), re.DOTALL)
_KIND_OF_GROUP = {f"k{i}": kind for i, (kind, _) in enumerate(SPAN_PATTERNS)}


@dataclass(frozen=True)
class Span:
    """One protected piece: what the source had, and what the translation must have instead."""

    kind: str
    original: str
    restored: str


@dataclass(frozen=True)
class ProtectedText:
    """A segment as the model sees it, plus what is needed to put the rest back."""

    text: str  # the core with ⟦n⟧ markers; no leading/trailing whitespace
    spans: tuple[Span, ...]  # spans[n - 1] is what ⟦n⟧ stands for
    leading: str = ""
    trailing: str = ""

    @property
    def has_words(self) -> bool:
        """Whether anything is left to translate once the protected spans are taken out."""
        return bool(re.search(r"[^\W\d_]", MARKER_RE.sub("", self.text)))

    def restore(self, translated: str) -> str:
        """The translation with every marker replaced by its span and the whitespace put back."""
        return self.leading + restore_markers(translated, self.spans) + self.trailing


def marker(n: int) -> str:
    return f"⟦{n}⟧"


def find_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of every span in `text` that must survive translation, left to right."""
    spans = []
    for match in _SCANNER.finditer(text):
        kind = _KIND_OF_GROUP[match.lastgroup or ""]
        spans.append((match.start(), match.end(), kind))
    return spans


def protect(text: str, terms: dict[str, str] | None = None) -> ProtectedText:
    """Replace every span that must survive (and each glossary term given) by a marker.

    `terms` maps a source term to its required translation; occurrences (whole words, any case)
    become markers restored as that translation.
    """
    core = text.strip()
    leading = text[: len(text) - len(text.lstrip())]
    trailing = text[len(text.rstrip()) :] if core else ""
    found = find_spans(core)
    if terms:
        found = _merge(found, _term_spans(core, terms))
    spans: list[Span] = []
    pieces: list[str] = []
    position = 0
    for start, end, kind in found:
        pieces.append(core[position:start])
        original = core[start:end]
        restored = _term_translation(original, terms) if kind == "glossary" and terms else original
        spans.append(Span(kind, original, restored))
        pieces.append(marker(len(spans)))
        position = end
    pieces.append(core[position:])
    return ProtectedText("".join(pieces), tuple(spans), leading, trailing)


def _term_spans(text: str, terms: dict[str, str]) -> list[tuple[int, int, str]]:
    found = []
    # Longest terms first, so "pull request" wins over "request".
    for term in sorted(terms, key=len, reverse=True):
        for match in re.finditer(rf"(?<!\w){re.escape(term)}(?!\w)", text, re.IGNORECASE):
            found.append((match.start(), match.end(), "glossary"))
    return found


def _term_translation(original: str, terms: dict[str, str]) -> str:
    for term, translation in terms.items():
        if term.casefold() == original.casefold():
            return translation
    return original


def _merge(first: list[tuple[int, int, str]], second: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Both lists of spans in order, dropping any that overlaps one already taken (first wins)."""
    taken: list[tuple[int, int, str]] = []
    for span in [*first, *second]:
        if all(span[1] <= other[0] or span[0] >= other[1] for other in taken):
            taken.append(span)
    return sorted(taken)


def restore_markers(text: str, spans: tuple[Span, ...]) -> str:
    """Replace ⟦n⟧ by spans[n-1].restored; a marker with no span (made up by the model) goes."""

    def put_back(match: re.Match[str]) -> str:
        n = int(match.group(1))
        return spans[n - 1].restored if 1 <= n <= len(spans) else ""

    return MARKER_RE.sub(put_back, text)


def missing_markers(protected: ProtectedText, translated: str) -> list[Span]:
    """The spans whose marker is not in `translated` exactly once."""
    counts: dict[int, int] = {}
    for match in MARKER_RE.finditer(translated):
        n = int(match.group(1))
        counts[n] = counts.get(n, 0) + 1
    return [span for n, span in enumerate(protected.spans, start=1) if counts.get(n, 0) != 1]


def lost_spans(source: str, translation: str, terms: dict[str, str] | None = None) -> list[str]:
    """Spans of `source` that do not appear in the restored `translation` as often as in the source.

    The independent check after restoration: it re-scans both texts instead of trusting markers.
    A quoted placeholder counts as its placeholder: its quotes are typography, which the target
    language may set otherwise (typography.py: “%(value)s” -> « %(value)s »).
    """
    if translation == source:  # a segment kept as it was: nothing to count (and it may be huge)
        return []
    lost = []
    source_spans = Counter(
        source[s + 1 : e - 1] if kind == "quoted-placeholder" else source[s:e]
        for s, e, kind in find_spans(source)
        if kind != "marker-lookalike"
    )
    for original, count in source_spans.items():
        if translation.count(original) < count:
            lost.append(original)
    if source.strip() and (
        _edge(source, "lead") != _edge(translation, "lead") or _edge(source, "trail") != _edge(translation, "trail")
    ):
        lost.append("whitespace")
    return lost


def _edge(text: str, side: str) -> str:
    if side == "lead":
        return text[: len(text) - len(text.lstrip())]
    return text[len(text.rstrip()) :]


def piecewise_parts(protected: ProtectedText) -> list[tuple[str, bool]]:
    """The core split at its markers: (text, translatable) pairs in order.

    The fallback when the model keeps losing a span: the words between spans are translated on
    their own, so every span is guaranteed to survive, at some cost in fluency.
    """
    parts: list[tuple[str, bool]] = []
    position = 0
    for match in MARKER_RE.finditer(protected.text):
        if match.start() > position:
            parts.append((protected.text[position : match.start()], True))
        parts.append((match.group(0), False))
        position = match.end()
    if position < len(protected.text):
        parts.append((protected.text[position:], True))
    return parts
