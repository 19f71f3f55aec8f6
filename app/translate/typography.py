"""Quotation marks, apostrophes and spacing as the target language sets them, where the source is typeset.

An English source written with typographic quotes and apostrophes (“value”, don’t) comes from a
project that cares for typography, and its translators set their own language's: Django's French
catalog writes « valeur » with no-break spaces inside, l’objet, and a no-break space before a
colon; its German one „Wert“. A small model copies the source's “…” instead, and a quoted
placeholder (“%(value)s”, protection.py) comes back with the source's quotes by construction.
A source with straight quotes and apostrophes (Sphinx's catalogs) is left as the model wrote it:
such a project writes plain ASCII in every language, and so do its translators.

Only the translated text changes: placeholders, tags, code and URLs are protected first and put
back as they were, but for the quotes around a quoted placeholder. Languages without a row keep
the model's marks. Written for llamadesk from the languages' typographic conventions (French:
Imprimerie nationale's rules, as Django's and Mozilla's French teams apply them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from llamadesk.app.translate.protection import protect, restore_markers

NO_BREAK_SPACE = "\u00a0"
TYPESET_MARKS = re.compile("[“”‘’„«»]")
# A pair of English double quotes (and the spaces a model puts inside them), on one line.
DOUBLE_QUOTED = re.compile("“[ \u00a0]*([^“”\n]*?)[ \u00a0]*”")
# An apostrophe between two letters: l'objet, don't (not a quote, not a prime after a digit).
APOSTROPHE = re.compile(r"(?<=[^\W\d_])['’](?=[^\W\d_])")


@dataclass(frozen=True)
class TypographyStyle:
    """How one language sets quotation marks and apostrophes (None: left as the model wrote them)."""

    quote_open: str | None = None
    quote_close: str | None = None
    apostrophe: str | None = "’"
    # Marks preceded by a no-break space (French); a plain space the model put there becomes one.
    spaced_marks: str = ""


STYLES: dict[str, TypographyStyle] = {
    "fr": TypographyStyle(f"«{NO_BREAK_SPACE}", f"{NO_BREAK_SPACE}»", spaced_marks=":;!?"),
    "de": TypographyStyle("„", "“"),
    "cs": TypographyStyle("„", "“"),
    "pl": TypographyStyle("„", "”", apostrophe=None),
    "ru": TypographyStyle("«", "»", apostrophe=None),
    "uk": TypographyStyle("«", "»"),
    "it": TypographyStyle(),
    "ca": TypographyStyle(),
}


def is_typeset(text: str) -> bool:
    """Whether `text` uses typographic quotes or apostrophes (the sign a project wants them)."""
    return bool(TYPESET_MARKS.search(text))


def typeset(translation: str, target_code: str) -> str:
    """`translation` with the target language's quotes, apostrophes and spacing (STYLES)."""
    style = STYLES.get(target_code)
    if style is None or not translation.strip():
        return translation
    protected = protect(translation)
    text = _set_marks(protected.text, style)
    spans = tuple(
        replace(span, restored=_requote(span.restored, style)) if span.kind == "quoted-placeholder" else span
        for span in protected.spans
    )
    return protected.leading + restore_markers(text, spans) + protected.trailing


def _set_marks(text: str, style: TypographyStyle) -> str:
    if style.quote_open is not None and style.quote_close is not None:
        text = DOUBLE_QUOTED.sub(lambda m: f"{style.quote_open}{m.group(1)}{style.quote_close}", text)
        if style.quote_open.endswith(NO_BREAK_SPACE):  # spaced quotes: those the model wrote get the same spaces
            opening, closing = re.escape(style.quote_open.strip()), re.escape(style.quote_close.strip())
            text = re.sub(rf"{opening}[ \u00a0]*(?=\S)", style.quote_open, text)
            text = re.sub(rf"(?<=\S)[ \u00a0]*{closing}", style.quote_close, text)
    if style.apostrophe is not None:
        text = APOSTROPHE.sub(style.apostrophe, text)
    if style.spaced_marks:
        marks = re.escape(style.spaced_marks)
        # "valeur : x", "valeur: x", "fini !" at the end: a mark that ends a clause, not "http://" or "10:30".
        text = re.sub(rf"(?<=[^\s«{marks}])[ ]?([{marks}])(?=\s|$)", NO_BREAK_SPACE + r"\1", text)
    return text


def _requote(quoted: str, style: TypographyStyle) -> str:
    """A quoted placeholder's English double quotes as the target's: “%(value)s” -> « %(value)s »."""
    if style.quote_open is None or style.quote_close is None or not (quoted[0] == "“" and quoted[-1] == "”"):
        return quoted
    return style.quote_open + quoted[1:-1] + style.quote_close
