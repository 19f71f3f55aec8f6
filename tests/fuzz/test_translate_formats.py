"""Broken copies of the structured files `translate` reads (.po, .srt, .vtt, .html): each is read
into units or refused with BadInputError (one line, exit 2 at the CLI), never another exception,
and whatever is read renders back. The readers are pure Python with no native code, so the cases
run in this process; seeds are fixed, so every run feeds the same bytes.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.translate.formats import read_translatable
from llamadesk.app.translate.formats.html import read_html
from llamadesk.app.translate.languages import resolve_language
from llamadesk.app.translate.segment import SegmentResult
from tests.translate_samples import PAGE, POT

DATA = Path(__file__).resolve().parent.parent / "data" / "translate"
CASES_PER_FILE = 1000
# Pieces that matter to the formats' grammars, spliced in at random places.
PALETTE = (b"-->", b"\n\n", b'"', b"\\", b"<", b">", b"&", b"msgid ", b"msgstr[1] ", b"#, fuzzy\n", b"\xff", b"\r\n")


def mutants(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(CASES_PER_FILE):
        mutant = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(mutant) + 1)
            how = rng.choice(("flip", "cut", "splice", "repeat"))
            if how == "flip" and mutant:
                mutant[min(at, len(mutant) - 1)] = rng.randrange(256)
            elif how == "cut":
                del mutant[at : at + rng.randint(1, 40)]
            elif how == "splice":
                mutant[at:at] = rng.choice(PALETTE)
            else:
                mutant[at:at] = mutant[at : at + rng.randint(1, 60)]
        out.append(bytes(mutant))
    return out


@pytest.mark.parametrize(
    "name, data",
    [
        ("messages.pot", POT),
        ("sample.srt", (DATA / "sample.srt").read_bytes()),
        ("sample.vtt", (DATA / "sample.vtt").read_bytes()),
        ("page.html", PAGE.encode()),
    ],
)
def test_broken_files_are_read_or_refused_never_a_crash(name, data):
    french = resolve_language("fr")
    read = refused = 0
    for case, mutant in enumerate(mutants(data, seed=len(name))):
        try:
            document = read_translatable(name, mutant, french)
        except BadInputError as error:
            assert "\n" not in str(error), (case, str(error))
            refused += 1
            continue
        read += 1
        results = [SegmentResult(unit.text, unit.text.upper()) for unit in document.units]
        assert isinstance(document.render(results), str), case
        if name.endswith(".html"):  # left as it is, a page comes back byte for byte
            as_it_is = read_html(mutant, name)  # with no target: the root's lang is not changed either
            same = [SegmentResult(unit.text, unit.text) for unit in as_it_is.units]
            assert as_it_is.render(same).encode("utf-8") == mutant, case
    assert read and (refused or name.endswith(".html")), (read, refused)


# Pieces of C plural expressions, and of what is not one, for the Plural-Forms header.
PLURAL_TOKENS = ("n", "1", "0", "2", "10", "100", "%", "==", "!=", ">", "<=", "&&", "||", "?", ":", "(", ")", "!",
                 "/", "-", ">>", "**", "x", "__import__", "1e9", " ")  # fmt: skip
PLURAL_COUNTS = ("0", "1", "2", "3", "6", "10", "11", "-1", "1000000000", "99999999999999999999", "x", "")


def french_po_with_plural_header(header: str) -> bytes:
    """A French catalog with one entry translated (so its own header is kept) and a plural message to do."""
    return (
        'msgid ""\nmsgstr ""\n"Language: fr\\n"\n"Content-Type: text/plain; charset=UTF-8\\n"\n'
        f'"Plural-Forms: {header}\\n"\n\nmsgid "Save"\nmsgstr "Enregistrer"\n\n'
        'msgid "%d file"\nmsgid_plural "%d files"\nmsgstr[0] ""\nmsgstr[1] ""\n'
    ).encode()


def test_a_catalogs_own_plural_forms_header_is_used_or_refused_never_a_crash():
    # A catalog already in the target language keeps its Plural-Forms header, so both of its values
    # come from the file: a billion forms, an expression that is not C, divides by zero, or gives a
    # form past nplurals. The byte mutants above start from a template, whose header is replaced.
    rng = random.Random(19)
    french = resolve_language("fr")
    read = refused = 0
    for case in range(2000):
        expression = "".join(rng.choice(PLURAL_TOKENS) for _ in range(rng.randint(0, 12)))
        if case % 4 == 0:  # a quarter from a well-formed shape, so that some are read
            expression = f"(n {rng.choice(('>', '!=', '%', '=='))} {rng.choice(('0', '1', '2'))})"
        header = f"nplurals={rng.choice(PLURAL_COUNTS)}; plural={expression};"
        try:
            document = read_translatable("fr.po", french_po_with_plural_header(header), french)
        except BadInputError as error:
            assert "\n" not in str(error), (case, header, str(error))
            refused += 1
            continue
        read += 1
        rendered = document.render([SegmentResult(u.text, u.text.replace("file", "fichier")) for u in document.units])
        count = document.nplurals
        assert "%d fichiers" in rendered and f"msgstr[{count - 1}]" in rendered, (case, header)
        assert f"msgstr[{count}]" not in rendered, (case, header)
    assert read and refused, (read, refused)


# What `msgfmt --check-format` says of a translation already in a catalog; the reader leaves those
# as they are (it checks the translations it writes), so a file it reads may still have them.
TRANSLATION_CHECKS = ("format specification", "do not both begin with", "do not both end with", "number of format")


def test_a_broken_template_read_is_one_msgfmt_reads(tmp_path):
    # polib read on where msgfmt stops (a string without its closing quote, a msgid without msgstr,
    # msgstr[5] after msgstr[0]...), and the catalog came back changed: the reader follows msgfmt's
    # grammar, so no mutant it reads is one that GNU msgfmt refuses to parse.
    assert shutil.which("msgfmt"), "GNU gettext's msgfmt is not installed (apt-get install gettext)"
    french = resolve_language("fr")
    po = tmp_path / "mutant.po"
    read = 0
    for case, mutant in enumerate(mutants(POT, seed=len("messages.pot"))):
        try:
            read_translatable("messages.pot", mutant, french)
        except BadInputError:
            continue
        read += 1
        po.write_bytes(mutant)
        proc = subprocess.run(["msgfmt", "--check-format", "-o", os.devnull, str(po)], capture_output=True)
        errors = [
            line
            for line in proc.stderr.decode("utf-8", "replace").splitlines()
            if line.startswith(str(po)) and "warning:" not in line
        ]
        ok = proc.returncode == 0 or (errors and all(any(c in line for c in TRANSLATION_CHECKS) for line in errors))
        assert ok, (case, proc.stderr)
    assert read, "some mutants are read"
