"""Structured files translated by the real gemma3-270m starter through real llama.cpp and the CLI:
a .pot cut from Django's English catalog, the sample .srt, a small page. Loading is pinned
(conftest's PINNED_LOAD / PINNED_FLAGS) and translation is greedy with seed 0 (the translator's
GREEDY sampling), so a run is repeatable; the assertions are about structure, which must hold
whatever the small model writes.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import srt
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from llamadesk.app.translate import JobFinished, JobSettings, resolve_language, translator_for
from llamadesk.app.translate.file_job import FileJob
from llamadesk.app.translate.formats import read_translatable
from llamadesk.app.translate.protection import lost_spans
from tests.conftest import PINNED_FLAGS, PINNED_LOAD, run_cli
from tests.translate_samples import PAGE, django_catalog, structure

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data" / "translate"
PINNED = [*PINNED_FLAGS, "--from", "en"]
EN, FR = resolve_language("en"), resolve_language("fr")
# Django messages with what a catalog must carry: a msgctxt, a plural with python-format
# placeholders, a placeholder in a sentence, a plain sentence.
CHOSEN = (
    ("May", "alt. month"),
    ("Ensure this value has at most %(limit_value)d character (it has %(show_value)d).", None),
    ("“%(value)s” is not a valid UUID.", None),
    ("This field cannot be blank.", None),
)


def small_pot() -> bytes:
    source = read_po(io.BytesIO(django_catalog().read_bytes()))
    pot = Catalog(project="Django", fuzzy=True)
    for msgid, context in CHOSEN:
        message = next(m for m in source if (m.id[0] if m.pluralizable else m.id) == msgid and m.context == context)
        pot.add(message.id, "", locations=message.locations, flags=message.flags, context=message.context)
    out = io.BytesIO()
    write_po(out, pot)
    return out.getvalue()


@pytest.fixture(scope="module")
def gemma_translator(gemma_path):
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import LoadSettings

    with Engine.load(gemma_path, LoadSettings(n_ctx=2048, **PINNED_LOAD)) as engine:
        yield translator_for(engine)


def translate(translator, name: str, data: bytes) -> JobFinished:
    document = read_translatable(name, data, FR)
    finished = list(FileJob(translator, document, JobSettings(FR, EN)).run())[-1]
    assert isinstance(finished, JobFinished)
    return finished


def test_a_pot_becomes_a_french_po_that_msgfmt_accepts(gemma_translator, tmp_path):
    pot = small_pot()
    finished = translate(gemma_translator, "django.pot", pot)
    catalog = read_po(io.BytesIO(finished.text.encode()), abort_invalid=True)
    assert catalog.locale.language == "fr" and catalog.num_plurals == 3
    messages = {m.id if not m.pluralizable else m.id[0]: m for m in catalog if m.id}
    assert set(messages) == {msgid for msgid, _ in CHOSEN}
    assert messages["May"].context == "alt. month"
    for message in messages.values():
        strings = message.string if message.pluralizable else (message.string,)
        if not all(strings):  # refused by the format check: allowed, never a broken entry
            continue
        ids = message.id if message.pluralizable else (message.id,)
        for form, string in enumerate(strings):
            source = ids[0] if form == 0 else ids[-1]
            assert not lost_spans(source, string), (source, string)
            # Django's messages are typeset: a quoted placeholder comes back in French guillemets.
            for quoted in re.findall(r"“([^“”]+)”", source):
                if quoted in string:
                    assert f"«\u00a0{quoted}\u00a0»" in string, (source, string)
    assert sum(bool(m.string if not m.pluralizable else all(m.string)) for m in messages.values()) >= 3
    assert shutil.which("msgfmt"), "GNU gettext's msgfmt is not installed (apt-get install gettext)"
    po = tmp_path / "fr.po"
    po.write_text(finished.text, encoding="utf-8")
    proc = subprocess.run(["msgfmt", "--check", "-o", "/dev/null", str(po)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert all(r.confidence is not None for r in finished.results)
    # The engine reports the model's token probabilities: every model-made segment has its mean.
    made = [r for r in finished.results if r.fallback is None and r.translation != r.source]
    assert made and all(r.mean_logprob is not None and r.mean_logprob <= 0 for r in made)


def test_cli_pot_to_po_then_update_in_place(tmp_path):
    pot = tmp_path / "django.pot"
    pot.write_bytes(small_pot())
    po = tmp_path / "fr.po"
    proc = run_cli("translate", "--to", "fr", str(pot), "-o", str(po), "--json", *PINNED)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / ".fr.po.translation.jsonl").exists()
    first = read_po(io.BytesIO(po.read_bytes()), abort_invalid=True)
    assert "confidence" in proc.stdout
    # A message added since, as msgmerge would bring it in: --update translates only that one.
    catalog = read_po(io.BytesIO(po.read_bytes()))
    catalog.add("Enter a whole number.", "")
    buffer = io.BytesIO()
    write_po(buffer, catalog)
    po.write_bytes(buffer.getvalue())
    proc = run_cli("translate", "--to", "fr", str(po), "--update", "--json", *PINNED)
    assert proc.returncode == 0, proc.stderr
    updated = read_po(io.BytesIO(po.read_bytes()), abort_invalid=True)
    assert updated.get("Enter a whole number.").string
    for message in first:
        if message.id:
            assert updated.get(message.id, message.context).string == message.string, "done entries left alone"


def test_cli_srt_keeps_timing_and_lines(tmp_path):
    source = DATA / "sample.srt"
    out = tmp_path / "sample.fr.srt"
    proc = run_cli("translate", "--to", "fr", str(source), "-o", str(out), *PINNED)
    assert proc.returncode == 0, proc.stderr
    before = list(srt.parse(source.read_text(encoding="utf-8")))
    after = list(srt.parse(out.read_text(encoding="utf-8")))
    assert [(s.index, s.start, s.end) for s in after] == [(s.index, s.start, s.end) for s in before]
    for old, new in zip(before, after, strict=True):
        assert new.content.strip() and new.content.count("\n") <= old.content.count("\n")
    assert after[4].content.startswith("<i>") and after[4].content.endswith("</i>")
    assert after[3].content.startswith("- ") and "\n- " in after[3].content
    assert [s.content for s in after] != [s.content for s in before]


def test_cli_a_cue_too_long_for_the_context_is_kept_and_the_rest_translated(tmp_path):
    # A cue of 9,000 words is more than the model's context: it stays as it was, said on stderr,
    # and the cues around it are translated (it once ended the job with exit 2, at every resume).
    # The cue after it, whose prompt would carry it as context, is asked again without it.
    wide = " ".join(["word"] * 9000) + "."
    source = tmp_path / "wide.srt"
    source.write_text(
        f"1\n00:00:01,000 --> 00:00:02,000\nThe train leaves at noon.\n\n"
        f"2\n00:00:03,000 --> 00:00:04,000\n{wide}\n\n"
        f"3\n00:00:05,000 --> 00:00:06,000\nWhere is the station?\n",
        encoding="utf-8",
    )
    out = tmp_path / "wide.fr.srt"
    proc = run_cli("translate", "--to", "fr", str(source), "-o", str(out), *PINNED)
    assert proc.returncode == 0, proc.stderr
    assert "kept as it was" in proc.stderr and "Traceback" not in proc.stderr
    after = list(srt.parse(out.read_text(encoding="utf-8")))
    assert after[1].content == wide
    assert after[0].content != "The train leaves at noon." and after[2].content != "Where is the station?"


def test_a_page_keeps_its_markup(gemma_translator):
    finished = translate(gemma_translator, "page.html", PAGE.encode())
    assert structure(finished.text) == structure(PAGE)
    assert '<script>var greeting = "Hello world";</script>' in finished.text
    assert "<code>make test</code>" in finished.text


def test_cli_update_writes_through_a_link_and_keeps_the_catalog_s_mode(tmp_path):
    # The link was replaced by a new file (the real catalog never updated), and 0640 became 0644.
    real = tmp_path / "real" / "fr.po"
    real.parent.mkdir()
    real.write_text(
        'msgid ""\nmsgstr ""\n"Language: fr\\n"\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgid "This field cannot be blank."\nmsgstr ""\n'
    )
    real.chmod(0o640)
    link = tmp_path / "fr.po"
    link.symlink_to(real)
    proc = run_cli("translate", "--to", "fr", str(link), "--update", *PINNED)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and link.resolve() == real
    assert read_po(io.BytesIO(real.read_bytes())).get("This field cannot be blank.").string
    assert real.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in real.parent.iterdir()) == ["fr.po"], "no temporary or sidecar left"


def test_cli_markdown_keeps_its_crlf_line_endings(tmp_path):
    # Markdown and plain text came back with LF only: every line changed in a Windows repository.
    source = tmp_path / "crlf.md"
    source.write_bytes(b"# Title\r\n\r\nRead the guide before you start.\r\n\r\n```\r\ncode here\r\n```\r\n")
    out = tmp_path / "out.md"
    proc = run_cli("translate", "--to", "fr", str(source), "-o", str(out), *PINNED)
    assert proc.returncode == 0, proc.stderr
    written = out.read_bytes()
    assert b"\n" not in written.replace(b"\r\n", b"") and written.endswith(b"```\r\ncode here\r\n```\r\n")


def test_cli_plain_text_translates_indented_paragraphs_and_markdown_keeps_them_as_code(tmp_path):
    # A .txt letter's indented paragraphs came out in English with exit 0: read as Markdown's
    # indented code. Mixed line endings come back as they were, code bytes included.
    letter = b"Meeting notes\r\n\n\tThe budget was approved by everyone today.\n\tNext meeting is on Monday morning.\n"
    sources = {}
    for name in ("notes.txt", "notes.md"):
        source = tmp_path / name
        source.write_bytes(letter)
        proc = run_cli("translate", "--to", "fr", str(source), "--json", *PINNED)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        sources[name] = [segment["source"] for segment in report["segments"]]
        assert report["text"].startswith(report["text"].split("\r\n")[0] + "\r\n\n"), "the CRLF then LF kept"
    assert any("budget was approved" in s for s in sources["notes.txt"]), sources
    assert not any("budget" in s for s in sources["notes.md"]), "Markdown: indented code is kept"
