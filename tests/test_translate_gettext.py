"""gettext catalogs with a scripted model (fast): .pot -> .po, plural forms, msgctxt, comments,
format checks as msgfmt does them, fuzzy, --update, resume and bad input.

The catalog is Django's English one (django/conf/locale/en/LC_MESSAGES/django.po in the Django
wheel, a test package; BSD-3-Clause): untranslated, with 15 plural and 25 msgctxt entries and
python-format placeholders. Output is parsed back with Babel, the library that wrote it, and
checked with GNU gettext's own `msgfmt --check` where installed (Debian's `gettext` package).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.translate import JobFinished, JobSettings, ResumeLog, SegmentTranslator, choose_strategy
from llamadesk.app.translate.file_job import FileJob
from llamadesk.app.translate.formats import read_translatable
from llamadesk.app.translate.formats.gettext import format_directives
from llamadesk.app.translate.languages import resolve_language
from llamadesk.app.translate.protection import find_spans, lost_spans
from llamadesk.app.translate.typography import typeset
from tests.conftest import run_cli
from tests.translate_fakes import ScriptedGenerator, segment_of, upper_translation
from tests.translate_samples import POT, django_catalog

EN = resolve_language("en")
FEW_SHOT = choose_strategy({}, has_chat_template=False)


def translate(data: bytes, to: str, reply=upper_translation, name="messages.pot", retranslate=False, resume=None):
    generator = ScriptedGenerator(reply)
    document = read_translatable(name, data, resolve_language(to), retranslate)
    job = FileJob(SegmentTranslator(generator, FEW_SHOT), document, JobSettings(resolve_language(to), EN), resume)
    finished = list(job.run())[-1]
    assert isinstance(finished, JobFinished)
    return finished, document, generator


def parse(text: str):
    return read_po(io.BytesIO(text.encode("utf-8")), abort_invalid=True)


def msgfmt_check(text: str, tmp_path: Path) -> None:
    # make test installs Debian's gettext; without it this check must fail, not pass silently.
    assert shutil.which("msgfmt"), "GNU gettext's msgfmt is not installed (apt-get install gettext)"
    po = tmp_path / "check.po"
    po.write_text(text, encoding="utf-8")
    proc = subprocess.run(["msgfmt", "--check", "-o", "/dev/null", str(po)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_django_catalog_to_french_keeps_everything_but_the_translations(tmp_path):
    source = django_catalog().read_bytes()
    finished, document, _ = translate(source, "fr")
    before, after = parse(source.decode()), parse(finished.text)
    assert after.locale.language == "fr" and after.num_plurals == 3
    assert "nplurals=3" in finished.text and "Language: fr" in finished.text
    old = {(m.id, m.context): m for m in before if m.id}
    new = {(m.id, m.context): m for m in after if m.id}
    assert old.keys() == new.keys(), "every message, with its msgctxt, is still there"
    for key, message in new.items():
        assert message.locations == old[key].locations and message.auto_comments == old[key].auto_comments
        assert message.user_comments == old[key].user_comments
        assert message.flags - {"fuzzy"} == old[key].flags - {"fuzzy"}
        strings = message.string if message.pluralizable else (message.string,)
        assert all(strings), f"{key} left untranslated"
        ids = message.id if message.pluralizable else (message.id,)
        for form, string in enumerate(strings):
            msgid = ids[0] if form == 0 else ids[-1]
            assert not lost_spans(msgid, string), (msgid, string)
            # Django's catalog is typeset (“…”, ’), so the French gets French quotes (typography.py).
            expected = typeset(msgid.upper(), "fr")
            assert string == expected or find_spans(msgid), "the scripted model upper-cases words"
    assert sum(m.pluralizable for m in new.values()) == 15
    msgfmt_check(finished.text, tmp_path)


def test_plural_forms_follow_the_target_language():
    source = django_catalog().read_bytes()
    ru, document, _ = translate(source, "ru", french)
    plural = next(m for m in parse(ru.text) if m.id and m.pluralizable)
    assert len(plural.string) == 3 and plural.string[1] == plural.string[2]
    assert document.inflected_plurals and "fuzzy" in plural.flags, "Russian's few and many need a person"
    ja, document, _ = translate(source, "ja")
    plural = next(m for m in parse(ja.text) if m.id and m.pluralizable)
    assert len(plural.string) == 1 and "CHARACTERS" in plural.string[0], "one form: the plural's translation"
    fr, document, _ = translate(source, "fr", french)
    plurals = [m for m in parse(fr.text) if m.id and m.pluralizable]
    assert not document.inflected_plurals, "French's third form is for millions"
    assert all(len(m.string) == 3 and "fuzzy" not in m.flags for m in plurals)


def french(prompt) -> str:
    """A 'translation' that reads as French (so the language check passes) and keeps the markers."""
    markers = re.findall(r"⟦\d+⟧", segment_of(prompt))
    return " Voici la traduction française de cette phrase importante " + " ".join(markers) + ".\n"


def test_msgctxt_reaches_the_model_and_lines_keep_their_breaks():
    finished, _, generator = translate(POT, "fr")
    texts = [p.text for p in generator.prompts]
    assert any("# abbrev. month\nEnglish: May\n" in t for t in texts)
    lines = next(m for m in parse(finished.text) if m.id and m.id.startswith("First"))
    assert lines.string == "FIRST LINE.\n\nTHIRD LINE."
    copied = next(m for m in parse(finished.text) if m.id and m.id.startswith("Copied"))
    assert copied.string == "COPIED %zu FILES TO %s.\n", "a final newline stays, as msgfmt --check wants"
    assert all(m.string for m in parse(finished.text) if m.id)


def test_a_translation_that_breaks_placeholders_is_not_written(tmp_path):
    def invents_a_placeholder(prompt):
        return " " + segment_of(prompt).upper() + " %s\n"

    finished, document, _ = translate(POT, "fr", invents_a_placeholder)
    catalog = parse(finished.text)
    hello = next(m for m in catalog if m.id.startswith("Hello"))
    assert hello.string == "", "an extra %s would crash the program's formatting: better untranslated"
    assert "Hello %(name)s" in document.rejected[0]
    may = next(m for m in catalog if m.id == "May")
    assert may.string, "entries without format flags are not subject to the check"
    msgfmt_check(finished.text, tmp_path)


def test_format_directives_compare_as_msgfmt_does():
    assert format_directives("%s of %d", {"c-format"}) == ["%s", "%d"]
    assert format_directives("%d sur %s", {"c-format"}) != format_directives("%s of %d", {"c-format"})
    named = format_directives("%(a)s %(b)d", {"python-format"})
    assert named == format_directives("%(b)d puis %(a)s", {"python-format"})
    brace = {"python-brace-format"}
    assert format_directives("{b} {a}", brace) == format_directives("{a} {b}", brace)
    assert format_directives("100%% %s", {"python-format"}) == ["%s"]
    assert format_directives("%s", set()) == []


def test_copies_of_the_source_are_marked_fuzzy():
    def copies(prompt):
        return " " + segment_of(prompt) + "\n"

    finished, _, _ = translate(POT, "fr", copies)
    hello = next(m for m in parse(finished.text) if m.id.startswith("Hello"))
    assert "fuzzy" in hello.flags
    segment = next(r for r in finished.results if r.source.startswith("Hello"))
    assert segment.confidence is not None and segment.confidence < 0.5 and segment.confidence_reasons


PO = """msgid ""
msgstr ""
"Language: fr\\n"
"Plural-Forms: nplurals=2; plural=(n > 1);\\n"
"Content-Type: text/plain; charset=UTF-8\\n"

msgid "Save"
msgstr "Enregistrer"

#, fuzzy
#| msgid "Open file"
msgid "Open the file"
msgstr "Ouvrir le fichier"

msgid "Close the window"
msgstr ""

#~ msgid "Old message"
#~ msgstr "Vieux message"
"""


def test_translated_and_fuzzy_entries_are_left_alone_unless_asked():
    finished, _, generator = translate(PO.encode(), "fr", name="fr.po")
    catalog = parse(finished.text)
    assert catalog.num_plurals == 2, "a catalog's own plural rules are kept"
    assert catalog.get("Save").string == "Enregistrer"
    assert catalog.get("Open the file").string == "Ouvrir le fichier" and catalog.get("Open the file").fuzzy
    assert catalog.get("Close the window").string == "CLOSE THE WINDOW"
    assert '#~ msgid "Old message"\n#~ msgstr "Vieux message"' in finished.text, "obsolete entries kept"
    assert len(generator.prompts) == 1
    finished, _, _ = translate(PO.encode(), "fr", name="fr.po", retranslate=True)
    catalog = parse(finished.text)
    assert catalog.get("Save").string == "SAVE"
    redone = catalog.get("Open the file")
    assert redone.string == "OPEN THE FILE" and not redone.fuzzy and not redone.previous_id


def test_a_catalog_in_another_language_is_refused():
    with pytest.raises(BadInputError, match="catalog for French"):
        read_translatable("fr.po", PO.encode(), resolve_language("de"))
    # CLDR's root locale has no English name: the message names it by its code, not "None".
    with pytest.raises(BadInputError, match=r"catalog for root \(Language: root\)"):
        read_translatable("root.po", PO.replace("Language: fr", "Language: root").encode(), resolve_language("de"))


def test_a_translated_catalog_without_a_language_header_keeps_its_plurals():
    po = PO.replace('"Language: fr\\n"\n', "") + (
        '\nmsgid "%d file"\nmsgid_plural "%d files"\nmsgstr[0] "%d fichier"\nmsgstr[1] "%d fichiers"\n'
    )
    assert "Language:" not in po
    finished, _, _ = translate(po.encode(), "fr", name="fr.po")
    catalog = parse(finished.text)
    assert catalog.num_plurals == 2 and catalog.get(("%d file", "%d files")).string == ("%d fichier", "%d fichiers")


def test_resume_skips_the_entries_already_done(tmp_path):
    log = ResumeLog(tmp_path / ".fr.po.translation.jsonl", {"to": "fr"})
    first, _, generator = translate(POT, "fr", resume=log)
    log.close()
    assert len(generator.prompts) >= 4
    again = ResumeLog(tmp_path / ".fr.po.translation.jsonl", {"to": "fr"})
    second, _, generator = translate(POT, "fr", resume=again)
    assert generator.prompts == [] and all(r.resumed for r in second.results)
    assert re.sub(r"PO-Revision-Date.*", "", second.text) == re.sub(r"PO-Revision-Date.*", "", first.text)


@pytest.mark.parametrize(
    "content",
    [
        b'msgid "a"\nmsgstr "b\nfoo bar\n',
        b"\xff\xfe garbage \x00\x01",
        b'msgid ""\nmsgstr ""\n',
        b'msgid ""\nmsgstr ""\n"Language: fr\\n"\n"Plural-Forms: nplurals=0; plural=0;\\n"\n\nmsgid "a"\nmsgstr "b"\n',
        b'msgid "a"\nmsgstr ""\n\nmsgid "a"\nmsgstr "x"\n',
        b'msgid ""\nmsgstr "Language: fr\\n"\n\nmsgid ""\nmsgstr "Language: de\\n"\n\nmsgid "a"\nmsgstr ""\n',
        b'msgid "a"\nmsgstr[0] "x"\n',
        b'msgid "a\\q"\nmsgstr ""\n',
        b'msgid ""\nmsgstr "Content-Type: text/plain; charset=NO-SUCH-CHARSET\\n"\n\nmsgid "a"\nmsgstr ""\n',
        b'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\nmsgid "caf\xe9"\nmsgstr ""\n',
    ],
    # A message twice (the person's translation of one of them was lost), two headers, msgstr[n]
    # without msgid_plural, an escape gettext does not know (it came back as "a\\q"): all once
    # taken and written; an unknown charset; bytes that are not the charset the header names.
    ids=[
        "unterminated",
        "binary",
        "no-messages",
        "no-plural-forms",
        "duplicate",
        "two-headers",
        "plural-strings-without-plural",
        "unknown-escape",
        "unknown-charset",
        "not-its-charset",
    ],
)
def test_broken_catalogs_are_one_line_exit_2_and_nothing_written(tmp_path, content):
    po = tmp_path / "broken.po"
    po.write_bytes(content)
    out = tmp_path / "out.po"
    # --from: refused for what the file is, not because two words do not tell their language
    proc = run_cli("translate", "--from", "en", "--to", "fr", str(po), "-o", str(out))
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "source language" not in proc.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [po]
    proc = run_cli("translate", "--from", "en", "--to", "fr", str(po), "--update")
    assert proc.returncode == 2 and po.read_bytes() == content


BAD_PLURAL_HEADERS = {
    "a billion forms": ("nplurals=1000000000; plural=(n > 1);", "declares nplurals=1000000000"),
    "a form past nplurals": ("nplurals=2; plural=5;", "gives form 5 for n=0"),
    "a form past nplurals for some n": ("nplurals=2; plural=(n > 5 ? 2 : n > 1);", "gives form 2 for n=6"),
    "not C": ("nplurals=2; plural=n >>> 1;", "cannot be used"),
    "a division by zero": ("nplurals=2; plural=n % 0;", "cannot be used (integer modulo by zero)"),
    "too deep": ("nplurals=2; plural=" + "(" * 30 + "n" + ")" * 30 + ";", "cannot be used"),
    "unbalanced": ("nplurals=2; plural=(n;", "cannot be used"),
    "a Python name": ("nplurals=2; plural=__import__;", "cannot be used"),
}


def with_plural_header(header: str) -> str:
    """A French catalog, partly translated (so it keeps its own header), with a plural message to do."""
    plural_message = '\nmsgid "%d file"\nmsgid_plural "%d files"\nmsgstr[0] ""\nmsgstr[1] ""\n'
    return PO.replace("nplurals=2; plural=(n > 1);", header) + plural_message


@pytest.mark.parametrize("case", BAD_PLURAL_HEADERS, ids=list(BAD_PLURAL_HEADERS))
def test_a_kept_plural_forms_header_that_cannot_be_used_is_refused_before_translating(case):
    # A catalog in the target language keeps its own Plural-Forms header, which comes from the file:
    # these once gave an internal error (exit 1), an IndexError after every entry was translated
    # (the work lost), or a billion-slot tuple that never finished.
    header, says = BAD_PLURAL_HEADERS[case]
    with pytest.raises(BadInputError, match=re.escape(says)) as refused:
        read_translatable("fr.po", with_plural_header(header).encode(), resolve_language("fr"))
    assert "\n" not in str(refused.value) and "Plural-Forms header" in str(refused.value)


def test_a_usable_kept_plural_header_is_followed():
    # Three forms for French is the translators' choice (not CLDR's two): kept, and every form filled.
    header = "nplurals=3; plural=(n == 0 ? 0 : n == 1 ? 1 : 2);"
    finished, _, _ = translate(with_plural_header(header).encode(), "fr", name="fr.po")
    catalog = parse(finished.text)
    assert catalog.num_plurals == 3
    assert catalog.get(("%d file", "%d files")).string == ("%d FILES", "%d FILE", "%d FILES")


def test_a_bad_plural_header_at_the_cli_is_one_line_exit_2_and_nothing_written(tmp_path):
    po = tmp_path / "fr.po"
    po.write_text(with_plural_header("nplurals=2; plural=5;"), encoding="utf-8")
    out = tmp_path / "out.po"
    proc = run_cli("translate", "--from", "en", "--to", "fr", str(po), "-o", str(out))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert not out.exists() and sorted(tmp_path.iterdir()) == [po]


# Catalogs GNU msgfmt refuses that polib read on, each then translated and written back changed
# (a msgid that lost its last letter, a #| line dropped, a msgid without msgstr filled in): the
# file, and where and what the refusal says.
MSGFMT_REFUSES = {
    "a msgid without its closing quote": ('msgid "Hello\nmsgstr ""\n', "line 1: a string without its closing quote"),
    "a #| msgid without its closing quote": (
        'msgid "Hello"\nmsgstr ""\n\n#| msgid "x\n',
        "line 4: a string without its closing quote",
    ),
    "an obsolete msgstr without its closing quote": (
        'msgid "a"\nmsgstr ""\n\n#~ msgid "x"\n#~ msgstr "y\n',
        "line 5: a string without its closing quote",
    ),
    "an escaped closing quote": ('msgid "Hello\\"\nmsgstr ""\n', "line 1: a string without its closing quote"),
    "the file ends in a string": ('msgid "a"\nmsgstr "b', "line 2: a string without its closing quote"),
    "msgstr[5] after msgstr[0]": (
        'msgid "file"\nmsgid_plural "files"\nmsgstr[0] "Datei"\nmsgstr[5] "Dateien"\n',
        "line 4: msgstr[5] where msgstr[1] should come",
    ),
    "msgstr[2] after msgstr[0]": (
        'msgid "file"\nmsgid_plural "files"\nmsgstr[0] "Datei"\nmsgstr[2] "Dateien"\n',
        "line 4: msgstr[2] where msgstr[1] should come",
    ),
    "msgstr[0] twice": (
        'msgid "file"\nmsgid_plural "files"\nmsgstr[0] "Datei"\nmsgstr[0] "Dateien"\n',
        "line 4: msgstr[0] where msgstr[1] should come",
    ),
    "plural forms from msgstr[1]": (
        'msgid "file"\nmsgid_plural "files"\nmsgstr[1] "Datei"\nmsgstr[2] "Dateien"\n',
        "line 3: msgstr[1] where msgstr[0] should come",
    ),
    "a msgid without msgstr": ('msgid "Hello"\nmsgstr "Hallo"\n\nmsgid "Bye"\n', "line 4: a msgid without a msgstr"),
    "an obsolete msgid without msgstr": ('msgid "a"\nmsgstr ""\n\n#~ msgid "x"\n', "line 4: a msgid without a msgstr"),
    "msgid_plural with a plain msgstr": (
        'msgid "file"\nmsgid_plural "files"\nmsgstr ""\n',
        "line 3: msgstr after msgid_plural, where msgstr[n] should come",
    ),
    "msgctxt without msgid": ('msgid "a"\nmsgstr ""\n\nmsgctxt "menu"\n', "line 4: the file ends after msgctxt"),
    "msgctxt before msgstr": ('msgctxt "menu"\nmsgstr "x"\n', "line 2: msgstr after msgctxt, where msgid should come"),
    "a comment inside a message": ('msgid "a"\n# note\nmsgstr "b"\n', "line 1: a msgid without a msgstr"),
    "#| msgctxt after #| msgid": (
        '#| msgid "x"\n#| msgctxt "c"\nmsgid "a"\nmsgstr "b"\n',
        "line 2: #| msgctxt after #| msgid",
    ),
    "#| msgid_plural alone": ('#| msgid_plural "xs"\nmsgid "a"\nmsgstr "b"\n', "line 1: #| msgid_plural where"),
    "a #| msgid continued without #|": (
        '#| msgid "x"\n"y"\nmsgid "a"\nmsgstr "b"\n',
        "line 2: a string continuing #| msgid of line 1",
    ),
    "#| lines with no message": ('msgid "a"\nmsgstr ""\n\n#| msgid "x"\n', "line 4: the file ends after #| msgid"),
    "a message partly obsolete": (
        'msgid "a"\nmsgstr ""\n\n#~ msgid "x"\nmsgstr "y"\n',
        "line 5: a message with lines marked obsolete (#~) and lines not (it starts on line 4)",
    ),
    "a msgid without quotes": ('msgid Hello\nmsgstr ""\n', "line 1: msgid is followed by 'Hello', not a quoted string"),
    "a word after the string": ('msgid "a\\\\"b\nmsgstr ""\n', "line 1: 'b' after a string's closing quote"),
    "a keyword msgfmt does not know": ('msgid "a"\nmsgtxt ""\n', "line 2: msgtxt is not a keyword of a message"),
    "a #| msgstr": ('#| msgstr "x"\nmsgid "a"\nmsgstr "b"\n', "line 1: #| msgstr is not a keyword of a message"),
    "an unknown escape in a #| line": ('#| msgid "x\\q"\nmsgid "a"\nmsgstr "b"\n', "line 1: the escape \\q"),
    "EOT in a string": ('msgid "a\x04b"\nmsgstr ""\n', "line 1: a string holds the control character EOT"),
    # msgfmt reads the msgid into the reference line above it, and then a msgstr without msgid
    "a comment ending in a backslash": (
        '#: src/main.c:12 \\\nmsgid "a"\nmsgstr ""\n',
        "line 1: a comment that ends in a backslash, which makes gettext read line 2 as part of the comment",
    ),
}


def msgfmt_refuses(text: str, tmp_path: Path) -> None:
    assert shutil.which("msgfmt"), "GNU gettext's msgfmt is not installed (apt-get install gettext)"
    po = tmp_path / "refused.po"
    po.write_text(text, encoding="utf-8")
    proc = subprocess.run(["msgfmt", "--check-format", "-o", "/dev/null", str(po)], capture_output=True)
    assert proc.returncode != 0, "msgfmt --check-format reads it"


@pytest.mark.parametrize("case", MSGFMT_REFUSES, ids=list(MSGFMT_REFUSES))
def test_what_msgfmt_refuses_is_refused_naming_the_line(case, tmp_path):
    text, says = MSGFMT_REFUSES[case]
    msgfmt_refuses(text, tmp_path)
    with pytest.raises(BadInputError, match=re.escape(f"messages.po, {says}")) as refused:
        read_translatable("messages.po", text.encode(), resolve_language("de"))
    assert "\n" not in str(refused.value)


def test_an_eleventh_plural_form_is_refused_not_read_as_the_second():
    # polib reads one digit of the index: msgstr[10] replaced msgstr[1], a form gettext shows.
    text = 'msgid "file"\nmsgid_plural "files"\n' + "".join(f'msgstr[{n}] "{n}"\n' for n in range(11))
    with pytest.raises(BadInputError, match=re.escape("fr.po, line 13: msgstr[10]: a message has at most 10")):
        read_translatable("fr.po", text.encode(), resolve_language("fr"))


FRENCH_HEADER = PO[: PO.index('msgid "Save"')]
# Their neighbours that msgfmt reads: each is read, its lines come back as they were, and what is
# written passes `msgfmt --check`.
MSGFMT_READS = {
    "#| msgctxt, msgid and msgid_plural": '#, fuzzy\n#| msgctxt "c"\n#| msgid "x"\n#| msgid_plural "xs"\n'
    'msgid "a"\nmsgid_plural "as"\nmsgstr[0] "un a"\nmsgstr[1] "des a"\n',
    "a #| msgid continued on a #| line": '#, fuzzy\n#| msgid "x"\n#| "y"\nmsgid "a"\nmsgstr "b"\n',
    "#| msgid before msgctxt": '#, fuzzy\n#| msgid "x"\nmsgctxt "c"\nmsgid "a"\nmsgstr "b"\n',
    "obsolete messages with #~|": '#~| msgid "x"\n#~ msgid "old"\n#~ msgstr "vieux"\n\n#~ msgid "y"\n#~ msgstr ""\n',
    "a blank line inside a message": 'msgid "a"\n\nmsgstr "b"\n',
    "a msgstr continued": 'msgid "ab"\nmsgstr "a"\n"b"\n',
    "indented keywords": '  msgid "a"\n\tmsgstr "b"\n',
    "a comment ending in a backslash above a comment": '# C:\\\\temp\\\n#: main.c:1\nmsgid "a"\nmsgstr "b"\n',
}


@pytest.mark.parametrize("case", MSGFMT_READS, ids=list(MSGFMT_READS))
def test_neighbours_msgfmt_reads_are_read_and_kept(case, tmp_path):
    text = FRENCH_HEADER + MSGFMT_READS[case] + '\nmsgid "Close"\nmsgstr ""\n'
    msgfmt_check(text, tmp_path)
    finished, _, _ = translate(text.encode(), "fr", name="fr.po")
    assert finished.text == text.replace('msgid "Close"\nmsgstr ""', 'msgid "Close"\nmsgstr "CLOSE"')
    msgfmt_check(finished.text, tmp_path)


# The reported ones: each was read, and its output written (or "nothing to translate" said).
REPORTED = (
    "a msgid without its closing quote",
    "a #| msgid without its closing quote",
    "msgstr[5] after msgstr[0]",
    "a msgid without msgstr",
)


@pytest.mark.parametrize("case", REPORTED)
def test_a_catalog_msgfmt_refuses_at_the_cli_is_one_line_naming_it_exit_2_and_nothing_written(case, tmp_path):
    text, says = MSGFMT_REFUSES[case]
    po = tmp_path / "q.po"
    po.write_text(text, encoding="utf-8")
    out = tmp_path / "q.de.po"
    proc = run_cli("translate", "--from", "en", "--to", "de", str(po), "-o", str(out), "--force")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert proc.stderr.startswith(f"llamadesk: q.po, {says}")
    assert not out.exists() and sorted(tmp_path.iterdir()) == [po]
    proc = run_cli("translate", "--from", "en", "--to", "de", str(po), "--update")
    assert proc.returncode == 2 and po.read_text(encoding="utf-8") == text


def test_update_and_retranslate_are_for_po_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("Hello.\n")
    assert run_cli("translate", "--to", "fr", str(text), "--update").returncode == 2
    assert run_cli("translate", "--to", "fr", str(text), "--retranslate").returncode == 2


def test_an_xgettext_template_with_its_header_placeholders_is_read(tmp_path):
    data = (Path(__file__).parent / "data" / "translate" / "xgettext.pot").read_bytes()
    assert b"nplurals=INTEGER" in data and b"charset=CHARSET" in data
    finished, _, _ = translate(data, "fr")
    catalog = parse(finished.text)
    assert catalog.num_plurals == 3 and catalog.charset == "utf-8"
    assert catalog.get(("%d file", "%d files")).string == ("%d FILE", "%d FILES", "%d FILES")
    assert catalog.get("May", "month name").string == "MAY"
    msgfmt_check(finished.text, tmp_path)


def test_a_complete_catalog_is_left_as_it_is_without_loading_a_model(tmp_path):
    po = tmp_path / "fr.po"
    po.write_text(PO.replace('msgid "Close the window"\nmsgstr ""', 'msgid "Close the window"\nmsgstr "Fermer"'))
    before = po.read_bytes()
    proc = run_cli("translate", "--to", "fr", str(po), "--update", "-m", str(tmp_path / "no-such-model.gguf"))
    assert proc.returncode == 0 and "nothing to translate" in proc.stderr, proc.stderr
    assert po.read_bytes() == before


WRITTEN_BY_A_PERSON = """# French translation of the PROJECTOR manual, VERSIONING chapter.
# Copyright (C) 2019 Someone
#
msgid ""
msgstr ""
"Project-Id-Version: projector 1.0\\n"
"PO-Revision-Date: 2019-02-01 10:00+0100\\n"
"Language: fr\\n"
"X-Generator: Poedit 3.0\\n"
"Plural-Forms: nplurals=2; plural=(n > 1);\\n"
"Content-Type: text/plain; charset=UTF-8\\n"
"X-Poedit-Basepath: ..\\n"

# A person's note.
#. An extracted comment.
#: src/main.c:10
#, no-c-format
msgid "Battery at 20% charge"
msgstr "Batterie à 20 % de charge"

#, c-format
msgid "Open %s"
msgstr ""

#, fuzzy
#| msgid "Open file"
msgid "Open the file"
msgstr "Ouvrir le fichier"

msgctxt "menu"
msgid "Close the window"
msgstr ""

#~ msgid "Old message"
#~ msgstr "Vieux message"
"""


def test_a_person_s_catalog_comes_back_as_it_was_but_for_the_translations(tmp_path):
    # Babel, which wrote catalogs before polib, rewrote "PROJECTOR" in the header comment, dropped
    # the X- headers, added python-format beside no-c-format (msgfmt --check then failed on a file
    # whose input passed) and wrote the #| line back as a comment ("# | msgid").
    finished, _, _ = translate(WRITTEN_BY_A_PERSON.encode(), "fr", name="fr.po")
    expected = WRITTEN_BY_A_PERSON.replace('msgid "Open %s"\nmsgstr ""', 'msgid "Open %s"\nmsgstr "OPEN %s"').replace(
        'msgid "Close the window"\nmsgstr ""', 'msgid "Close the window"\nmsgstr "CLOSE THE WINDOW"'
    )
    revised = re.search(r"PO-Revision-Date: (.*)\\n", finished.text)
    assert revised and revised.group(1) != "2019-02-01 10:00+0100", "the revision date is the translation's"
    assert finished.text.replace(revised.group(1), "2019-02-01 10:00+0100") == expected
    msgfmt_check(finished.text, tmp_path)


def test_line_endings_and_charset_are_read_from_the_file(tmp_path):
    template = (Path(__file__).parent / "data" / "translate" / "xgettext.pot").read_bytes()
    crlf, _, _ = translate(template.replace(b"\n", b"\r\n"), "fr")
    lf, _, _ = translate(template, "fr")
    assert crlf.text.count("\r\n") == lf.text.count("\n") and "\n" not in crlf.text.replace("\r\n", "")
    assert re.sub(r"PO-Revision-Date.*", "", crlf.text.replace("\r\n", "\n")) == re.sub(
        r"PO-Revision-Date.*", "", lf.text
    )
    latin1 = PO.replace("charset=UTF-8", "charset=ISO-8859-1").replace("Close the window", "Close the café")
    finished, _, _ = translate(latin1.encode("latin-1"), "fr", name="fr.po")
    assert "charset=UTF-8" in finished.text and "ISO-8859-1" not in finished.text, "written as UTF-8, and says so"
    assert parse(finished.text).get("Close the café").string == "CLOSE THE CAFÉ"
    msgfmt_check(finished.text, tmp_path)


@pytest.mark.parametrize(
    ("flag", "msgid", "msgstr"),
    [
        # gemma3-270m's real answers: French writes "50 %", which printf reads as "% d" (space flag)
        ("c-format", "%s: 50 percent of the disk is used", "%s: 50 % du disque est utilisé."),
        ("python-format", "%(name)s used 20 percent of the data", "%(name)s utilisé 20% de la donnée"),
    ],
)
def test_a_bare_percent_in_a_translation_is_a_directive_as_msgfmt_reads_it(tmp_path, flag, msgid, msgstr):
    assert format_directives(msgstr, {flag}) != format_directives(msgid, {flag})
    header = 'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
    with pytest.raises(AssertionError):  # msgfmt agrees that the catalog would be broken
        msgfmt_check(f'{header}#, {flag}\nmsgid "{msgid}"\nmsgstr "{msgstr}"\n', tmp_path)
    pot = f'{header}#, {flag}\nmsgid "{msgid}"\nmsgstr ""\n'
    finished, document, _ = translate(pot.encode(), "fr", reply=[" " + msgstr + "\n"] * 8)
    assert parse(finished.text).get(msgid).string == "" and document.rejected == [msgid]
    msgfmt_check(finished.text, tmp_path)


def test_valid_directives_with_flags_gettext_knows_still_compare_equal():
    assert format_directives("% d files, %'d bytes, %Id", {"c-format"}) == ["% d", "%'d", "%Id"]
    assert format_directives("%5.2f%% done", {"python-format"}) == ["%5.2f"]


PARTLY_PLURAL = """msgid ""
msgstr ""
"Language: fr\\n"
"Content-Type: text/plain; charset=UTF-8\\n"
"Plural-Forms: nplurals=2; plural=(n > 1);\\n"

#, c-format
msgid "%d apple"
msgid_plural "%d apples"
msgstr[0] "%d pomme (relue par un humain)"
msgstr[1] ""
"""


@pytest.mark.parametrize("language_header", [True, False])
def test_update_keeps_a_plural_form_a_person_wrote_and_fills_only_the_empty_one(language_header):
    po = PARTLY_PLURAL if language_header else PARTLY_PLURAL.replace('"Language: fr\\n"\n', "")
    finished, _, generator = translate(po.encode(), "fr", name="fr.po")
    message = parse(finished.text).get(("%d apple", "%d apples"))
    assert message.string == ("%d pomme (relue par un humain)", "%d APPLES")
    assert len(generator.prompts) == 1, "only the empty form goes to the model"
    finished, _, _ = translate(po.encode(), "fr", name="fr.po", retranslate=True)
    assert parse(finished.text).get(("%d apple", "%d apples")).string == ("%d APPLE", "%d APPLES")


def test_the_charset_is_the_header_s_not_one_named_in_a_comment():
    po = "# Converted from charset=ISO-8859-1 to UTF-8 in 2019.\n" + PO.replace('msgstr "Enregistrer"', 'msgstr "Café"')
    finished, _, _ = translate(po.encode(), "fr", name="fr.po")
    assert 'msgstr "Café"' in finished.text and "Ã" not in finished.text


def test_a_catalog_that_says_it_is_utf16_is_refused_naming_the_charset():
    po = PO.replace("charset=UTF-8", "charset=UTF-16").encode()
    with pytest.raises(BadInputError, match="charset=UTF-16.*msgconv"):
        read_translatable("fr.po", po, resolve_language("fr"))


def test_a_complete_catalog_to_another_output_is_that_output_as_it_is(tmp_path):
    # Nothing written to -o, an empty stdout (so "> fr.new && mv fr.new fr.po" emptied the catalog)
    # and no JSON at all, each with exit 0.
    po = tmp_path / "fr.po"
    po.write_text(PO.replace('msgid "Close the window"\nmsgstr ""', 'msgid "Close the window"\nmsgstr "Fermer"'))
    no_model = ("-m", str(tmp_path / "no-such-model.gguf"))
    out = tmp_path / "out.po"
    proc = run_cli("translate", "--to", "fr", str(po), "-o", str(out), *no_model)
    assert proc.returncode == 0 and out.read_bytes() == po.read_bytes(), proc.stderr
    proc = run_cli("translate", "--to", "fr", str(po), *no_model)
    assert proc.returncode == 0 and proc.stdout == po.read_text()
    proc = run_cli("translate", "--to", "fr", str(po), "--json", *no_model)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["segments"] == [] and report["text"] == po.read_text()


@pytest.mark.parametrize("to", ["zh", "zh-CN", "zh-Hans", "Simplified Chinese"])
def test_a_partly_translated_zh_cn_catalog_is_updated_for_simplified_chinese(to):
    po = PO.replace("Language: fr", "Language: zh_CN").replace("nplurals=2; plural=(n > 1);", "nplurals=1; plural=0;")
    finished, _, _ = translate(po.encode(), to, name="zh_CN.po")
    catalog = parse(finished.text)
    assert catalog.get("Save").string == "Enregistrer" and catalog.get("Close the window").string
    assert "Language: zh_CN" in finished.text, "its own header kept"


def test_a_traditional_chinese_catalog_is_not_simplified_chinese():
    po = PO.replace("Language: fr", "Language: zh_TW")
    with pytest.raises(BadInputError, match="Traditional"):
        read_translatable("zh_TW.po", po.encode(), resolve_language("zh"))
    read_translatable("zh_TW.po", po.encode(), resolve_language("zh-Hant"))


def test_a_script_modifier_in_the_language_header_is_read():
    # sr_RS@latin was read as Babel's likely sr_Cyrl_RS: a Latin catalog taken for Cyrillic.
    po = PO.replace("Language: fr", "Language: sr_RS@latin")
    with pytest.raises(BadInputError, match=r"Serbian \(Latin, Serbia\)"):
        read_translatable("sr.po", po.encode(), resolve_language("sr"))


NO_WRAP = """msgid ""
msgstr ""
"Language: fr\\n"
"Content-Type: text/plain; charset=UTF-8\\n"
"Plural-Forms: nplurals=2; plural=(n > 1);\\n"

#: src/a/very/long/path/to/some/module/file_one.c:100 src/a/very/long/path/to/other/file_two.c:200
msgid "This one-line message was extracted with xgettext --no-wrap, so it is longer than the width"
msgstr "Ce message d'une ligne a été extrait avec xgettext --no-wrap, il est donc plus long que la largeur"

msgid ""
"A message written "
"over several lines"
msgstr ""
"Un message écrit "
"sur plusieurs lignes"

msgid "Close the window"
msgstr ""

#~ msgid "Old message"
#~ msgstr "Vieux message"
"""


def test_update_leaves_entries_it_does_not_translate_as_they_were_written(tmp_path):
    # polib wrote the whole catalog again: long lines wrapped at 79 columns, a string over several
    # lines joined, the reference line split; every entry changed in the project's diff.
    finished, _, generator = translate(NO_WRAP.encode(), "fr", name="fr.po")
    assert len(generator.prompts) == 1
    expected = NO_WRAP.replace(
        'msgid "Close the window"\nmsgstr ""', 'msgid "Close the window"\nmsgstr "CLOSE THE WINDOW"'
    )
    assert finished.text == expected
    msgfmt_check(finished.text, tmp_path)


def test_a_template_whose_header_is_only_fuzzy_gets_no_stray_comment_line():
    pot = '#, fuzzy\nmsgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\nmsgid "Save"\nmsgstr ""\n'
    finished, _, _ = translate(pot.encode(), "fr")
    assert finished.text.startswith('msgid ""\n'), finished.text[:40]


def test_filling_a_message_keeps_its_forms_past_nplurals():
    # msgfmt accepts a third form under nplurals=2 (the header may be what is wrong); filling the
    # empty second form dropped the third, a person's text lost without a word.
    po = PARTLY_PLURAL.replace('msgstr[1] ""', 'msgstr[1] ""\nmsgstr[2] "%d pommes (forme 3)"')
    finished, _, _ = translate(po.encode(), "fr", name="fr.po")
    assert 'msgstr[2] "%d pommes (forme 3)"' in finished.text
    assert 'msgstr[1] "%d APPLES"' in finished.text
    assert finished.text.index("msgstr[1]") < finished.text.index("msgstr[2]")
