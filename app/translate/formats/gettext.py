"""gettext catalogs (.pot, .po) as units to translate, read and written with polib.

polib keeps a catalog as its file has it: the header's comment and every header field (an
`X-Generator` too), translator and extracted comments, references, flags exactly as written,
previous msgids (`#|`) and obsolete entries (`#~`). Babel's catalog, which the first version used,
rewrote all of those: it put the project's name in place of "PROJECT" inside the header comment's
words ("PROJECTOR" became "projectorOR"), dropped headers it did not know and wrote placeholders
for ones the file did not have, added `python-format` to every msgid with a %, so that an entry
marked `no-c-format` then failed `msgfmt --check`, and wrote `#|` lines back as comments. Babel
stays for what it alone knows: every language's plural forms from CLDR, which a .pot made into a
.po needs for its `Plural-Forms` header.

Each untranslated message gives a unit for its msgid and one for its msgid_plural; the msgctxt
goes to the model as a note. Entries already translated are left alone (fuzzy ones too: a
person's draft), and so are the plural forms a person filled in an entry with others empty,
unless `retranslate`. The entries a run does not change, and the header if it stays the same, are
written back as the file's own lines: polib writes every string wrapped to its width, which
changed every entry of a catalog made with another (xgettext --no-wrap, Weblate's).

Before a translation is written it is checked as `msgfmt --check` would: the same c-format /
python-format directives (in the same order unless named or numbered) and the same
python-brace-format fields. A translation that fails is not written (the entry stays
untranslated; better none than one that crashes the program at run time). Low confidence
(confidence.py), and plural forms beyond the two the model was asked for, give `#, fuzzy`.

What msgfmt refuses is refused here too, before anything is translated (polib read on past most
of it, and the file came back changed): a line that cannot be where it is in a message (a msgid
with no msgstr, msgstr[n] without msgid_plural, a comment inside a message, #| lines out of
order, a message partly marked #~), a string without its closing quote (in #| and #~ lines too),
plural forms not numbered 0, 1, 2..., a comment ending in a backslash (msgfmt reads the next line
into it), a message twice, a second header, an escape gettext does not know. So is an eleventh
plural form, which polib reads as msgstr[1]. The file is decoded by the charset its header names
and written as UTF-8 (its header then says so), with the line endings it had.
"""

from __future__ import annotations

import codecs
import datetime
import gettext
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import polib
from babel import Locale, UnknownLocaleError
from babel.core import get_global
from babel.messages.catalog import Catalog

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.translate.confidence import is_low
from llamadesk.app.translate.file_job import Unit
from llamadesk.app.translate.languages import Language
from llamadesk.app.translate.protection import FORMAT
from llamadesk.app.translate.segment import SegmentResult

WIDTH = 79  # GNU gettext's default page width, to which xgettext and msgmerge wrap strings
# The most plural forms a catalog may declare. CLDR's languages need at most six (Arabic's).
MAX_PLURAL_FORMS = 10
_FIX_PLURALS = "fix the file's Plural-Forms header (or translate its .pot template)"
# A catalog without a Plural-Forms header is read as gettext reads it: English's two forms.
_DEFAULT_PLURALS = (2, "(n != 1)")
# The escapes polib turns back into the same characters (and msgfmt knows); \a, octal and hex
# escapes, which msgfmt also reads, would come back changed, so they are refused rather than lost.
_KNOWN_ESCAPES = frozenset('\\"ntrvbf')
# A catalog's lines as msgfmt reads them: each keyword with its quoted string on the same line (as
# polib reads them), between the whitespace msgfmt skips; "#|" keywords are a previous msgid's.
_BLANKS = " \t\r\f\v"
_KEYWORDS = ("msgctxt", "msgid", "msgid_plural", "msgstr")
_PREVIOUS_KEYWORDS = ("msgctxt", "msgid", "msgid_plural")
_WORD = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_INDEX = re.compile(r"[ \t]*\[[ \t]*([0-9]{1,9})[ \t]*\]")  # longer: no catalog has that many forms
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
# msgfmt's grammar of a message, as what may follow each keyword (None: the start of a message):
#   [#| [msgctxt] msgid [msgid_plural]]  [msgctxt] msgid  (msgstr | msgid_plural msgstr[0] msgstr[1]...)
# each keyword with its string and any strings that continue it. Comments come between messages.
_FOLLOWS: dict[str | None, tuple[str, ...]] = {
    None: ("#| msgctxt", "#| msgid", "msgctxt", "msgid"),
    "#| msgctxt": ("#| msgid",),
    "#| msgid": ("#| msgid_plural", "msgctxt", "msgid"),
    "#| msgid_plural": ("msgctxt", "msgid"),
    "msgctxt": ("msgid",),
    "msgid": ("msgstr", "msgid_plural"),
    "msgid_plural": ("msgstr[]",),
    "msgstr": (),
    "msgstr[]": ("msgstr[]",),
}
_COMPLETE = frozenset({"msgstr", "msgstr[]"})  # a message may end after these
# The charset of the header's Content-Type field, a string line of the header entry: a
# "charset=" in a comment above it ("Converted from charset=ISO-8859-1") is not the file's.
_CHARSET = re.compile(rb'^[ \t]*(?:msgstr[ \t]+)?"Content-Type:[^"\r\n]*charset=([A-Za-z0-9._:-]+)', re.MULTILINE)
# A directive as msgfmt reads it: every % not part of %% starts one, and the flags include the
# space (% d) and C's ' and I, so French's "50 % du" is a directive that the msgid lacks.
_C_DIRECTIVE = re.compile(
    r"%(?:\d+\$)?[-+ #0'I]*(?:\d+|\*(?:\d+\$)?)?(?:\.(?:\d+|\*(?:\d+\$)?)?)?"
    r"(?:hh|h|ll|l|L|q|j|z|t)?[diouxXeEfFgGaAcCsSpn@]"
)
_PYTHON_DIRECTIVE = re.compile(r"%(?:\([^()]*\))?[-+ #0]*(?:\d+|\*)?(?:\.(?:\d+|\*)?)?[hlL]?[diouxXeEfFgGcrsa]")
# What stands for a % that begins no directive: msgfmt --check refuses the string, and so do we.
_BROKEN_DIRECTIVE = "%<not a directive>"
_ESCAPE = re.compile(r"\\(.?)")
# gettext's @modifiers that name a script (sr_RS@latin, uz_UZ@cyrillic)
_MODIFIER_SCRIPTS = {"latin": "Latn", "cyrillic": "Cyrl"}


def _reason(error: Exception) -> str:
    """An error's message as one line of reasonable length (polib's may quote a long msgid)."""
    reason = " ".join(str(error).split())
    return reason if len(reason) <= 160 else reason[:157] + "..."


def _decode(data: bytes, name: str) -> tuple[str, str]:
    """The catalog's text, decoded by the charset its header names, and its line ending."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    found = _CHARSET.search(data)  # the header entry comes first, so its Content-Type is found first
    charset = found.group(1).decode("ascii") if found else "utf-8"
    if charset.upper() == "CHARSET":  # xgettext's placeholder in a fresh template
        charset = "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        raise BadInputError(
            f"{name} declares charset={charset}, which Python does not know; convert it to UTF-8 (msgconv)"
        ) from None
    if "msgid".encode(charset) != b"msgid":
        # The header was just read as ASCII, so the file cannot be UTF-16/32 as it says.
        raise BadInputError(
            f"{name} declares charset={charset}, which a catalog cannot be written in; "
            "fix its Content-Type header or convert the file to UTF-8 (msgconv)"
        )
    try:
        text = data.decode(charset)
    except UnicodeDecodeError as error:
        raise BadInputError(
            f"{name} is not valid {charset} (its header's charset) at byte {error.start}; "
            "fix its Content-Type header or convert the file (msgconv)"
        ) from None
    newline = "\r\n" if "\r\n" in text[:4096] else "\n"
    return text.replace("\r\n", "\n"), newline


class _Token(NamedTuple):
    """One line of a catalog as msgfmt's grammar sees it: a keyword with its string, a string that
    continues the one above, or a comment."""

    kind: str  # "msgid", "msgstr[]", "string", "comment"...; "#| msgid", "#| string" on a #| line
    line: int
    obsolete: bool  # written after "#~"
    index: int = 0  # of msgstr[index]


def _lex(text: str, name: str, newline: str) -> Iterator[_Token]:
    """The catalog's lines as tokens; BadInputError for a line that is not a keyword with one string,
    a string, a comment or blank. Lines are split as polib splits them, so both read the same ones.

    msgfmt joins a line that ends in a backslash to the next (where lines end in \n alone), which
    polib does not: a comment that ends in one would take the next line into it.
    """
    joined = 0  # the line of a comment that ends in a backslash, if the line before this is one
    for number, line in enumerate(text.splitlines(), start=1):
        rest = line.strip(_BLANKS)
        obsolete = previous = False
        if rest.startswith("#~"):  # an obsolete entry's line; "#~|" a previous msgid of one
            obsolete, previous = True, rest.startswith("#~|")
            rest = rest[3 if previous else 2 :].lstrip(_BLANKS)
        if rest.startswith("#|") and not previous:
            previous, rest = True, rest[2:].lstrip(_BLANKS)
        if not rest:
            joined = 0
            continue
        if rest.startswith("#"):
            joined = number if newline == "\n" and line.endswith("\\") else 0
            yield _Token("comment", number, obsolete)
            continue
        if joined:
            raise BadInputError(
                f"{name}, line {joined}: a comment that ends in a backslash, which makes gettext read line "
                f"{number} as part of the comment; remove the backslash"
            )
        prefix = "#| " if previous else ""
        keyword, index = "string", 0
        if word := _WORD.match(rest):
            keyword, rest = word.group(), rest[word.end() :]
            keywords = _PREVIOUS_KEYWORDS if previous else _KEYWORDS
            if keyword not in keywords:
                listed = ", ".join(prefix + each for each in keywords)
                raise BadInputError(
                    f"{name}, line {number}: {prefix}{keyword} is not a keyword of a message ({listed})"
                )
            if keyword == "msgstr" and (bracket := _INDEX.match(rest)):
                keyword, index, rest = "msgstr[]", int(bracket.group(1)), rest[bracket.end() :]
            rest = rest.lstrip(_BLANKS)
        string = _STRING.match(rest)
        if string is None:
            if rest.startswith('"'):
                raise BadInputError(
                    f'{name}, line {number}: a string without its closing quote; end it with " on the same line'
                )
            if keyword != "string":
                shown = keyword.replace("[]", f"[{index}]")
                raise BadInputError(
                    f"{name}, line {number}: {prefix}{shown} is followed by {rest[:20]!r}, not a quoted string"
                )
            raise BadInputError(f"{name}, line {number}: {rest[:20]!r} is not a keyword, a quoted string or a comment")
        if rest[string.end() :].strip(_BLANKS):
            shown = rest[string.end() :].strip(_BLANKS)[:20]
            raise BadInputError(
                f"{name}, line {number}: {shown!r} after a string's closing quote; a line holds one string"
            )
        body = string.group()[1:-1]
        unknown = next((e.group(1) for e in _ESCAPE.finditer(body) if e.group(1) not in _KNOWN_ESCAPES), None)
        if unknown is not None:
            raise BadInputError(
                f"{name}, line {number}: the escape \\{unknown} in a string is not one "
                'llamadesk can keep (\\n \\t \\r \\" \\\\ \\v \\b \\f); write the character itself'
            )
        if "\x04" in body:
            raise BadInputError(
                f"{name}, line {number}: a string holds the control character EOT (\\x04), which gettext "
                "uses to join msgctxt and msgid; remove it"
            )
        yield _Token(prefix + keyword, number, obsolete, index)


def _check_messages(tokens: Iterable[_Token], name: str) -> None:
    """BadInputError where the tokens do not make messages as msgfmt's grammar has them (_FOLLOWS)."""
    part: str | None = None  # the last keyword of the message being read; None between messages
    at = first = _Token("comment", 0, False)  # that keyword's token, and the message's first
    for token in tokens:
        if token.kind.endswith("string"):  # continues the string of the keyword above
            if part is None or part.startswith("#|") != token.kind.startswith("#|"):
                raise BadInputError(_out_of_place(name, token, part, at))
        else:
            if part in _COMPLETE and token.kind not in _FOLLOWS[part]:
                part = None  # the message is complete: this token starts the next one
            if part is None and token.kind == "comment":
                continue
            if token.kind not in _FOLLOWS[part]:
                raise BadInputError(_out_of_place(name, token, part, at))
            if token.kind == "msgstr[]":
                expected = at.index + 1 if part == "msgstr[]" else 0
                if token.index != expected:
                    raise BadInputError(
                        f"{name}, line {token.line}: msgstr[{token.index}] where msgstr[{expected}] should come; "
                        "number a message's plural forms 0, 1, 2... in order"
                    )
                if token.index >= MAX_PLURAL_FORMS:
                    raise BadInputError(
                        f"{name}, line {token.line}: msgstr[{token.index}]: a message has at most "
                        f"{MAX_PLURAL_FORMS} plural forms (msgstr[0] to msgstr[{MAX_PLURAL_FORMS - 1}])"
                    )
            if part is None:
                first = token
            part, at = token.kind, token
        if token.obsolete != first.obsolete:
            raise BadInputError(
                f"{name}, line {token.line}: a message with lines marked obsolete (#~) and lines not "
                f"(it starts on line {first.line}); mark all of its lines #~ or none"
            )
    if part is not None and part not in _COMPLETE:
        raise BadInputError(_out_of_place(name, None, part, at))


def _out_of_place(name: str, token: _Token | None, part: str | None, at: _Token) -> str:
    """The message for a token (None: the file's end) that cannot follow `part`, the keyword on `at`."""
    if part == "msgid" and (token is None or token.kind != "msgstr[]"):
        return f'{name}, line {at.line}: a msgid without a msgstr after it; add msgstr ""'
    if part == "msgid_plural" and (token is None or token.kind != "msgstr"):
        return f'{name}, line {at.line}: a msgid_plural without msgstr[0] after it; add msgstr[0] "", msgstr[1] ""'
    if token is None:
        return f"{name}, line {at.line}: the file ends after {part}, where {' or '.join(_FOLLOWS[part])} should follow"
    found = {"comment": "a comment", "string": "a string", "#| string": "a #| string"}.get(token.kind, token.kind)
    found = found.replace("[]", f"[{token.index}]")
    if part is None:
        return f"{name}, line {token.line}: {found} where a message should start (with msgctxt, msgid or #| lines)"
    if token.kind.endswith("string"):
        return f"{name}, line {token.line}: {found} continuing {part} of line {at.line}; mark both #| or neither"
    expected = " or ".join(_FOLLOWS[part]).replace("[]", "[n]")
    return f"{name}, line {token.line}: {found} after {part.replace('[]', '[n]')}, where {expected} should come"


def _parse(text: str, name: str) -> polib.POFile:
    """polib's reading, strict where msgfmt is; BadInputError for a file that is not a catalog."""
    if not text.endswith("\n"):
        text += "\n"  # also keeps polib from taking a one-line text for a path to open
    try:
        # Duplicates are found below: polib's own check searches the whole list for each entry,
        # minutes for a catalog of 100,000 messages.
        catalog = polib.pofile(text, wrapwidth=WIDTH, check_for_duplicates=False)
    except (OSError, UnicodeError, IndexError, KeyError, ValueError) as error:
        raise BadInputError(f"{name} is not a valid gettext catalog: {_reason(error)}") from None
    seen: set[tuple[str | None, str]] = set()
    for entry in catalog:
        if entry.obsolete:
            continue
        if (entry.msgctxt, entry.msgid) in seen:
            raise BadInputError(
                f"{name} has the message {_shown(entry.msgid)} twice; msgfmt refuses that too: keep one of them"
            )
        seen.add((entry.msgctxt, entry.msgid))
        if entry.msgid == "":
            raise BadInputError(f'{name} has a second header entry (msgid ""); keep one header')
    return catalog


def _shown(msgid: str) -> str:
    line = " ".join(msgid.split())
    return repr(line if len(line) <= 60 else line[:57] + "...")


@dataclass(frozen=True)
class _Layout:
    """How the file was written, beyond what polib keeps: it is written back the same way."""

    newline: str
    header_comment: bool
    recoded: bool  # decoded from another charset than UTF-8 (written back as UTF-8)
    lines: list[str]  # the text as read (LF line endings): what is not rewritten is copied from here


def _read_po(data: bytes, name: str) -> tuple[polib.POFile, _Layout]:
    """The parsed catalog and how its file was laid out."""
    text, newline = _decode(data, name)
    _check_messages(_lex(text, name, newline), name)
    catalog = _parse(text, name)
    # Headers in the file's order (polib's own order moves the ones it knows to the front); the
    # ones given to a template for its language come last.
    catalog.ordered_metadata = lambda: list(catalog.metadata.items())
    content_type = catalog.metadata.get("Content-Type", "")
    recoded = "charset=" in content_type and not re.search(r"charset=utf-?8\b", content_type, re.IGNORECASE)
    lines = (text if text.endswith("\n") else text + "\n").splitlines(keepends=True)
    # A header comment, not the header's "#, fuzzy" flags line, which polib writes by itself.
    header_comment = text.lstrip().startswith("#") and not text.lstrip().startswith("#,")
    return catalog, _Layout(newline, header_comment, recoded, lines)


def catalog_plurals(catalog: polib.POFile, name: str) -> tuple[int, str]:
    """nplurals and the plural expression of the catalog's Plural-Forms header, nplurals bounded."""
    header = catalog.metadata.get("Plural-Forms")
    if header is None:
        return _DEFAULT_PLURALS
    count = re.search(r"nplurals\s*=\s*([^;\s]*)", header)
    expression = re.search(r"plural\s*=\s*([^;]*)", header)
    if count is None or expression is None or not count.group(1).isdigit():
        shown = header if len(header) <= 60 else header[:57] + "..."
        raise BadInputError(
            f"{name}: its Plural-Forms header {shown!r} does not say nplurals=N; plural=...: {_FIX_PLURALS}"
        )
    number = int(count.group(1))
    if not 1 <= number <= MAX_PLURAL_FORMS:
        raise BadInputError(f"{name} declares nplurals={number}; a catalog has 1 to {MAX_PLURAL_FORMS}: {_FIX_PLURALS}")
    return number, expression.group(1).strip()


def catalog_locale(catalog: polib.POFile) -> Locale | None:
    """The catalog's Language header as a Babel locale (None when it has none or names no language)."""
    language = catalog.metadata.get("Language", "").strip()
    if not language:
        return None
    code, _, modifier = language.replace("-", "_").partition("@")
    try:
        locale = Locale.parse(code)
    except (UnknownLocaleError, ValueError, TypeError):
        return None
    script = _MODIFIER_SCRIPTS.get(modifier.lower())
    if script is not None:  # sr_RS@latin is Serbian in Latin letters, not Babel's likely Cyrillic
        locale = Locale(locale.language, territory=locale.territory, script=script)
    return locale


def _script(locale: Locale) -> str | None:
    """The locale's script, or its language's likely one (zh: Hans) where it names none."""
    if locale.script:
        return locale.script
    likely = get_global("likely_subtags").get(locale.language)
    return Locale.parse(likely).script if likely else None


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
        printf = _printf_directives(text, _PYTHON_DIRECTIVE if "python-format" in flags else _C_DIRECTIVE)
        reorderable = all(d.startswith("%(") or re.match(r"%\d+\$", d) for d in printf)
        found += sorted(printf) if reorderable else printf
    if "python-brace-format" in flags:
        found += sorted(re.findall(FORMAT, text))
    return found


def _printf_directives(text: str, directive: re.Pattern[str]) -> list[str]:
    """Each % directive in `text` in order (%% aside); _BROKEN_DIRECTIVE for a % that starts none."""
    found: list[str] = []
    at = text.find("%")
    while at != -1:
        if text.startswith("%%", at):
            end = at + 2
        elif match := directive.match(text, at):
            found.append(match.group(0))
            end = match.end()
        else:
            found.append(_BROKEN_DIRECTIVE)
            end = at + 1
        at = text.find("%", end)
    return found


@dataclass
class _Slot:
    """Where a unit's translation goes: entry `entry`, forms `forms` of its msgstr."""

    entry: polib.POEntry
    source: str
    forms: tuple[int, ...]  # () for a message without plural forms


@dataclass
class GettextFile:
    catalog: polib.POFile
    nplurals: int
    newline: str = "\n"
    header_comment: bool = True  # whether the file starts with a comment
    # The file's lines, and the state of its header and of each entry (by id) as read: an entry
    # whose state is unchanged is written back as its lines were, not re-wrapped by polib.
    lines: list[str] = field(default_factory=list)
    read_header: tuple = ()
    read_entries: dict[int, tuple] = field(default_factory=dict)
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
        by_entry: dict[int, list[tuple[_Slot, SegmentResult]]] = {}
        for slot, result in zip(self.slots, results, strict=True):
            by_entry.setdefault(id(slot.entry), []).append((slot, result))
        filled = [self._fill(pairs) for pairs in by_entry.values()]
        if any(filled) and "PO-Revision-Date" in self.catalog.metadata:
            self.catalog.metadata["PO-Revision-Date"] = _now()
        text = self._spliced() if self.lines else self._header_text() + "".join(self._entry_texts())
        return text.replace("\n", self.newline) if self.newline != "\n" else text

    def _header_text(self) -> str:
        """The header comment and entry as polib writes them."""
        head = polib.POFile(wrapwidth=WIDTH)
        head.header, head.metadata = self.catalog.header, self.catalog.metadata
        head.metadata_is_fuzzy = self.catalog.metadata_is_fuzzy
        head.ordered_metadata = self.catalog.ordered_metadata  # type: ignore[method-assign]
        text = head.__unicode__()
        if not self.header_comment and text.startswith("#\n"):
            text = text[2:]  # polib writes an empty header comment as "#"; the file had none
        return text

    def _entry_texts(self) -> list[str]:
        return ["\n" + entry.__unicode__(WIDTH) for entry in self.catalog]

    def _spliced(self) -> str:
        """The file's own lines, with only the header and entries that changed written anew.

        polib re-wraps every string to its width and every reference line: written whole, a
        catalog made with other widths (xgettext --no-wrap, Weblate's) changed on every entry.
        """
        entries = list(self.catalog)
        starts = [max((entry.linenum or 0) - 1, 0) for entry in entries] + [len(self.lines)]
        if entries and not all(a < b for a, b in zip(starts, starts[1:], strict=False)):
            return self._header_text() + "".join(self._entry_texts())  # lines not known: polib's whole
        parts = [self._rewritten(self.lines[: starts[0]], _header_state(self.catalog) != self.read_header, None)]
        for entry, start, end in zip(entries, starts, starts[1:], strict=False):
            changed = _entry_state(entry) != self.read_entries.get(id(entry))
            parts.append(self._rewritten(self.lines[start:end], changed, entry))
        return "".join(parts)

    def _rewritten(self, lines: list[str], changed: bool, entry: polib.POEntry | None) -> str:
        """A stretch of the file (the header's when `entry` is None): as it was, or written anew
        with the blank lines that followed it."""
        if not changed:
            return "".join(lines)
        blank = len(lines)
        while blank and not lines[blank - 1].strip():
            blank -= 1
        after = "".join(lines[blank:]) or ("\n" if entry is None and self.catalog else "")
        return (self._header_text() if entry is None else entry.__unicode__(WIDTH)) + after

    def _fill(self, pairs: list[tuple[_Slot, SegmentResult]]) -> bool:
        """Write one entry's translations; False when they failed the format check (left as it was)."""
        entry = pairs[0][0].entry
        flags = set(entry.flags)
        for slot, result in pairs:
            if format_directives(result.translation, flags) != format_directives(slot.source, flags):
                self.rejected.append(entry.msgid)
                return False
        fuzzy = any(is_low(result) for _, result in pairs)
        if entry.msgid_plural:
            # Forms a person already filled are kept: only the slots' forms are written. So are
            # filled forms past nplurals (msgfmt accepts them; the header may be the one that is
            # wrong); empty ones there go.
            existing = entry.msgstr_plural or {}
            forms = {n: "" for n in range(self.nplurals)} | {
                n: text for n, text in existing.items() if n < self.nplurals or text
            }
            for slot, result in pairs:
                for n in slot.forms:
                    forms[n] = result.translation
            entry.msgstr_plural = dict(sorted(forms.items()))
            # The model gave one singular and one plural: a language with more everyday forms
            # (Russian's few/many, Arabic's) gets the plural in all of them, for a person to inflect.
            fuzzy = fuzzy or self.inflected_plurals
        else:
            entry.msgstr = pairs[0][1].translation
        if fuzzy:
            if "fuzzy" not in entry.flags:
                entry.flags.insert(0, "fuzzy")
        else:
            entry.flags = [flag for flag in entry.flags if flag != "fuzzy"]
            # a fuzzy entry's old msgid no longer applies
            entry.previous_msgid = entry.previous_msgid_plural = entry.previous_msgctxt = None
        return True


def _header_state(catalog: polib.POFile) -> tuple:
    return (catalog.header, tuple(catalog.metadata.items()), bool(catalog.metadata_is_fuzzy))


def _entry_state(entry: polib.POEntry) -> tuple:
    """What filling an entry may change (its translation, flags and previous msgid)."""
    return (
        entry.msgstr,
        tuple(sorted(entry.msgstr_plural.items())),
        tuple(entry.flags),
        entry.previous_msgid,
        entry.previous_msgid_plural,
        entry.previous_msgctxt,
    )


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M%z")


def read_catalog(data: bytes, name: str, target: Language, retranslate: bool = False) -> GettextFile:
    """The untranslated messages of a .po/.pot as units; BadInputError for a file that is not one."""
    catalog, layout = _read_po(data, name)
    read_header = _header_state(catalog)
    read_entries = {id(entry): _entry_state(entry) for entry in catalog}
    entries = [entry for entry in catalog if not entry.obsolete]
    if not entries:
        raise BadInputError(f"{name} has no messages to translate")
    if layout.recoded:  # written back as UTF-8, so its header must say so
        content_type = catalog.metadata["Content-Type"]
        catalog.metadata["Content-Type"] = re.sub(r"charset=[^;\s]*", "charset=UTF-8", content_type)
    _retarget(catalog, name, target, entries)
    nplurals, expression = catalog_plurals(catalog, name)
    forms = plural_forms(nplurals, expression, name)
    singular_form = forms[1]
    document = GettextFile(
        catalog,
        nplurals,
        layout.newline,
        layout.header_comment,
        lines=layout.lines,
        read_header=read_header,
        read_entries=read_entries,
        inflected_plurals=len(set(forms[2:])) > 1,
    )
    for entry in entries:
        if _translated(entry) and not retranslate:
            continue
        note = entry.msgctxt or ""
        if entry.msgid_plural:
            filled = {n for n, text in (entry.msgstr_plural or {}).items() if text and not retranslate}
            others = tuple(n for n in range(nplurals) if n != singular_form and n not in filled)
            if nplurals > 1 and singular_form not in filled:
                document.units.append(Unit(entry.msgid, note))
                document.slots.append(_Slot(entry, entry.msgid, (singular_form,)))
            plurals = others if nplurals > 1 else tuple({0} - filled)
            if plurals:
                document.units.append(Unit(entry.msgid_plural, note))
                document.slots.append(_Slot(entry, entry.msgid_plural, plurals))
        else:
            document.units.append(Unit(entry.msgid, note))
            document.slots.append(_Slot(entry, entry.msgid, ()))
    return document


def plural_forms(count: int, expression: str, name: str) -> list[int]:
    """The plural form of each count 0..999 by a Plural-Forms rule, once it is known to be usable.

    A catalog already in the target language keeps its own header, which comes from the file
    (its nplurals bounded by catalog_plurals): its plural expression must parse (the stdlib's
    gettext.c2py reads C's grammar, with its own limits on length and nesting) and give a form
    below nplurals for every count a program shows (0..999 here). Otherwise BadInputError,
    before any translating: a rule that fails later would lose the translations made by then.
    """
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


def _translated(entry: polib.POEntry) -> bool:
    """Whether the entry has nothing left to fill (every plural form written)."""
    if entry.msgid_plural:
        return bool(entry.msgstr_plural) and all(entry.msgstr_plural.values())
    return bool(entry.msgstr)


def _has_translation(entry: polib.POEntry) -> bool:
    """Whether a person wrote any of the entry's translation (one plural form is enough)."""
    return any(entry.msgstr_plural.values()) if entry.msgid_plural else bool(entry.msgstr)


def _retarget(catalog: polib.POFile, name: str, target: Language, entries: list[polib.POEntry]) -> None:
    """Make the catalog one for `target`: its Language and Plural-Forms headers.

    A catalog already in the target language keeps its headers (its translators may have
    chosen other plural rules), and so does a translated one that does not say its language; a
    template, or an untranslated catalog of the source language, is given the target's. A
    catalog translated into another language is refused. Every other header stays as it is.
    """
    locale = babel_locale(target)
    current = catalog_locale(catalog)
    # Both with their likely script: zh_CN (Babel's zh_Hans_CN) is a catalog for llamadesk's zh.
    if current is not None and (current.language, _script(current)) == (locale.language, _script(locale)):
        return
    translated = any(_has_translation(entry) for entry in entries)
    if current is None and translated:
        return  # translated, with no Language header: taken to be in the language asked for, as it is
    if current is not None and translated:
        raise BadInputError(
            f"{name} is a catalog for {current.english_name or current} (Language: {current}); "
            f"translate its template (.pot) into {target.name} instead"
        )
    metadata = catalog.metadata
    metadata["Language"] = str(locale)
    metadata["Plural-Forms"] = Catalog(locale=locale).plural_forms  # CLDR's rule, as Babel knows it
    metadata["Content-Type"] = "text/plain; charset=UTF-8"
    metadata["PO-Revision-Date"] = _now()
    catalog.metadata_is_fuzzy = []  # the header is filled in now (a template's header is marked fuzzy)
    nplurals, _ = catalog_plurals(catalog, name)
    for entry in entries:  # room for the target's number of plural forms
        if entry.msgid_plural:
            entry.msgstr_plural = {n: "" for n in range(nplurals)}
