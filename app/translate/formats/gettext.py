"""gettext catalogs (.pot, .po) as units to translate, read and written with Babel.

Babel's catalog keeps what a translator relies on (msgctxt, translator and extracted comments,
references, flags, previous msgids, obsolete entries) and knows every language's plural forms
from CLDR, so a .pot becomes a .po with the target's `Plural-Forms` header and as many msgstr[n]
as that language has. Each untranslated message gives a unit for its msgid and one for its
msgid_plural; the msgctxt goes to the model as a note. Entries already translated are left
alone (fuzzy ones too: a person's draft) unless `retranslate`.

Before a translation is written it is checked as `msgfmt --check` would: the same c-format /
python-format directives (in the same order unless named or numbered) and the same
python-brace-format fields. A translation that fails is not written (the entry stays
untranslated; better none than one that crashes the program at run time). Low confidence
(confidence.py), and plural forms beyond the two the model was asked for, give `#, fuzzy`.
"""

from __future__ import annotations

import datetime
import gettext
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from babel import Locale, UnknownLocaleError
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import PoFileError, PoFileParser, write_po

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.translate.confidence import is_low
from llamadesk.app.translate.file_job import Unit
from llamadesk.app.translate.languages import Language
from llamadesk.app.translate.protection import FORMAT, PRINTF
from llamadesk.app.translate.segment import SegmentResult

WIDTH = 76  # Babel's and xgettext's default line width for msgid/msgstr strings
# The most plural forms a catalog may declare. CLDR's languages need at most six (Arabic's).
MAX_PLURAL_FORMS = 10
_FIX_PLURALS = "fix the file's Plural-Forms header (or translate its .pot template)"


class _PluralFormsOutOfRange(Exception):
    def __init__(self, count: int):
        super().__init__(count)
        self.count = count


class _BoundedCatalog(Catalog):
    """Babel's Catalog, except that a Plural-Forms header's nplurals outside 1..MAX_PLURAL_FORMS
    stops the reading the first time it is used.

    Babel's reader gives every plural message a list of nplurals strings as it reads it, so a
    file that says nplurals=1000000000 would take minutes and gigabytes for each one before any
    check of ours could run; the header is only known once Babel has parsed it, so the check
    sits where Babel asks for the number.
    """

    @property
    def num_plurals(self) -> int:
        count = Catalog.num_plurals.fget(self)
        if not 1 <= count <= MAX_PLURAL_FORMS:
            raise _PluralFormsOutOfRange(count)
        return count


def _read_po(data: bytes, name: str) -> Catalog:
    """Babel's read_po (strict: abort_invalid) into a _BoundedCatalog; BadInputError for a file that is not one."""
    catalog = _BoundedCatalog()
    try:
        PoFileParser(catalog, ignore_obsolete=False, abort_invalid=True).parse(io.BytesIO(data))
        _ = catalog.num_plurals  # reading it checks it: a file without plural messages never had it read
    except _PluralFormsOutOfRange as error:
        raise BadInputError(
            f"{name} declares nplurals={error.count}; a catalog has 1 to {MAX_PLURAL_FORMS}: {_FIX_PLURALS}"
        ) from None
    except (PoFileError, UnicodeDecodeError, LookupError, ValueError) as error:
        # Babel's message may quote a msgid with newlines in it: one line, and not too long.
        reason = " ".join(str(error).split())
        reason = reason if len(reason) <= 160 else reason[:157] + "..."
        raise BadInputError(f"{name} is not a valid gettext catalog: {reason}") from None
    return catalog


def babel_locale(language: Language) -> Locale:
    """Babel's locale for a llamadesk language code (zh-Hant -> zh_Hant)."""
    try:
        return Locale.parse(language.code.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        raise BadInputError(f"no gettext plural rules are known for {language.name}") from None


def format_directives(text: str, flags: set[str] | frozenset[str]) -> list[str]:
    """The directives `msgfmt --check` compares for an entry with these flags, in a comparable order.

    printf directives keep their order unless they are named (%(x)s) or numbered (%1$s), which
    a translation may reorder; brace fields may always be reordered.
    """
    found: list[str] = []
    if flags & {"c-format", "python-format"}:
        printf = [d for d in re.findall(PRINTF, text) if d != "%%"]
        reorderable = all(d.startswith("%(") or re.match(r"%\d+\$", d) for d in printf)
        found += sorted(printf) if reorderable else printf
    if "python-brace-format" in flags:
        found += sorted(re.findall(FORMAT, text))
    return found


@dataclass
class _Slot:
    """Where a unit's translation goes: message `message`, forms `forms` of its msgstr."""

    message: Message
    source: str
    forms: tuple[int, ...]  # () for a message without plural forms


@dataclass
class GettextFile:
    catalog: Catalog
    units: list[Unit] = field(default_factory=list)
    slots: list[_Slot] = field(default_factory=list)
    # Messages whose translation failed the format check: left untranslated, told to the user.
    rejected: list[str] = field(default_factory=list)
    # Whether everyday numbers (2..999) fall into more than one plural form (Russian's few/many,
    # Arabic's), which one plural translation cannot serve; French's extra form is for millions.
    inflected_plurals: bool = False

    def readable(self, index: int, text: str) -> str:
        """Units here hold the file's own text: nothing to show otherwise."""
        return text

    def render(self, results: Sequence[SegmentResult]) -> str:
        by_message: dict[int, list[tuple[_Slot, SegmentResult]]] = {}
        for slot, result in zip(self.slots, results, strict=True):
            by_message.setdefault(id(slot.message), []).append((slot, result))
        for pairs in by_message.values():
            self._fill(pairs)
        out = io.BytesIO()
        write_po(out, self.catalog, width=WIDTH, include_previous=True)
        return out.getvalue().decode("utf-8")

    def _fill(self, pairs: list[tuple[_Slot, SegmentResult]]) -> None:
        message = pairs[0][0].message
        flags = set(message.flags)
        for slot, result in pairs:
            if format_directives(result.translation, flags) != format_directives(slot.source, flags):
                self.rejected.append(message.id if isinstance(message.id, str) else message.id[0])
                return  # the entry stays as it was: untranslated
        fuzzy = any(is_low(result) for _, result in pairs)
        if message.pluralizable:
            forms = [""] * self.catalog.num_plurals
            for slot, result in pairs:
                for n in slot.forms:
                    forms[n] = result.translation
            message.string = tuple(forms)
            # The model gave one singular and one plural: a language with more everyday forms
            # (Russian's few/many, Arabic's) gets the plural in all of them, for a person to inflect.
            fuzzy = fuzzy or self.inflected_plurals
        else:
            message.string = pairs[0][1].translation
        if fuzzy:
            message.flags.add("fuzzy")
        else:
            message.flags.discard("fuzzy")
            message.previous_id = []  # a fuzzy entry's old msgid no longer applies


# What xgettext writes into a template's header for the translator to fill in, which Babel's
# strict reading takes for errors (int("INTEGER"), an unknown charset "CHARSET"). The header is
# filled in for the target language anyway, so these become what a fresh catalog has.
TEMPLATE_HEADER_PLACEHOLDERS = (
    (b'"Plural-Forms: nplurals=INTEGER; plural=EXPRESSION;\\n"\n', b""),
    (b"charset=CHARSET", b"charset=UTF-8"),
)


def read_catalog(data: bytes, name: str, target: Language, retranslate: bool = False) -> GettextFile:
    """The untranslated messages of a .po/.pot as units; BadInputError for a file that is not one."""
    for placeholder, filled in TEMPLATE_HEADER_PLACEHOLDERS:
        data = data.replace(placeholder, filled, 1)
    catalog = _read_po(data, name)
    messages = [m for m in catalog if m.id]
    if not messages:
        raise BadInputError(f"{name} has no messages to translate")
    _retarget(catalog, name, target, messages)
    forms = plural_forms(catalog, name)
    singular_form = forms[1]
    document = GettextFile(catalog, inflected_plurals=len(set(forms[2:])) > 1)
    for message in messages:
        if _translated(message) and not retranslate:
            continue
        note = message.context or ""
        if message.pluralizable:
            singular, plural = message.id[0], message.id[1]
            others = tuple(n for n in range(catalog.num_plurals) if n != singular_form)
            if catalog.num_plurals > 1:
                document.units.append(Unit(singular, note))
                document.slots.append(_Slot(message, singular, (singular_form,)))
            document.units.append(Unit(plural, note))
            document.slots.append(_Slot(message, plural, others if catalog.num_plurals > 1 else (0,)))
        else:
            document.units.append(Unit(message.id, note))
            document.slots.append(_Slot(message, message.id, ()))
    return document


def plural_forms(catalog: Catalog, name: str) -> list[int]:
    """The plural form of each count 0..999 by the catalog's Plural-Forms rule, once it is known to be usable.

    A catalog already in the target language keeps its own header, which comes from the file
    (its nplurals was bounded as it was read, _BoundedCatalog): its plural expression must parse
    (the stdlib's gettext.c2py reads C's grammar, with its own limits on length and nesting) and
    give a form below nplurals for every count a program shows (0..999 here). Otherwise
    BadInputError, before any translating: a rule that fails later would lose the translations
    made by then.
    """
    count, expression = catalog.num_plurals, catalog.plural_expr
    shown = expression if len(expression) <= 60 else expression[:57] + "..."
    try:
        form_of = gettext.c2py(expression)
        forms = [form_of(n) for n in range(1000)]
    except (ValueError, ArithmeticError, RecursionError, SyntaxError) as error:
        reason = f"its plural expression {shown!r} cannot be used ({error})"
        raise BadInputError(f"{name}: {reason}: {_FIX_PLURALS}") from None
    wrong = next((n for n, form in enumerate(forms) if not 0 <= form < count), None)
    if wrong is not None:
        raise BadInputError(
            f"{name}: its plural expression {shown!r} gives form {forms[wrong]} for n={wrong}, "
            f"but nplurals={count}: {_FIX_PLURALS}"
        )
    return forms


def _translated(message: Message) -> bool:
    strings = message.string if isinstance(message.string, (list, tuple)) else (message.string,)
    return all(strings)


def _retarget(catalog: Catalog, name: str, target: Language, messages: list[Message]) -> None:
    """Make the catalog one for `target`: its Language and Plural-Forms headers.

    A catalog already in the target language keeps its headers (its translators may have
    chosen other plural rules), and so does a translated one that does not say its language; a
    template, or an untranslated catalog of the source language, is given the target's. A
    catalog translated into another language is refused.
    """
    locale = babel_locale(target)
    current = catalog.locale
    if current is not None and (current.language, current.script) == (locale.language, locale.script):
        return
    translated = any(_translated(m) for m in messages)
    if current is None and translated:
        return  # translated, with no Language header: taken to be in the language asked for, as it is
    if current is not None and translated:
        raise BadInputError(
            f"{name} is a catalog for {current.english_name or current} (Language: {current}); "
            f"translate its template (.pot) into {target.name} instead"
        )
    model = Catalog(locale=locale)
    headers = {key: value for key, value in catalog.mime_headers}
    headers["Language"] = str(locale)
    headers["Plural-Forms"] = model.plural_forms
    headers["Content-Type"] = "text/plain; charset=utf-8"
    # Babel's setter parses these back: locale, plural rules, charset.
    catalog.mime_headers = list(headers.items())
    catalog.charset = "utf-8"
    catalog.revision_date = datetime.datetime.now(datetime.timezone.utc)
    catalog.fuzzy = False  # the header is filled in now (a template's header is marked fuzzy)
    for message in messages:  # room for the target's number of plural forms
        if message.pluralizable:
            message.string = ("",) * catalog.num_plurals
