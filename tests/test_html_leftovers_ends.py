"""Where HTML ends an element left open inside a kept or translated one, and <xmp>'s raw text
(found by an adversarial tester; each expectation is where html5lib, which parses as browsers do,
ends the element: the text after it was kept in English, or a kept one went to the model)."""

from __future__ import annotations

import pytest

from llamadesk.app.translate.formats.html import read_html
from tests.translate_fakes import translated_html


def units(page: str) -> list[str]:
    return [unit.text for unit in read_html(page.encode(), "page.html").units]


def assert_only_translate_me_is_translated(page: str) -> None:
    text, given = translated_html(page)
    assert given == ["Translate me."]
    assert text == page.replace("Translate me.", "TRANSLATE ME.")


@pytest.mark.parametrize(
    "page",
    [
        '<ul><li><p translate="no">Acme</ul>Translate me.',
        '<ol><li><p translate="no">Acme</ol>Translate me.',
        '<header><p translate="no">Acme</header>Translate me.',
        '<nav><p translate="no">Acme</nav>Translate me.',
        '<dl><dd><p translate="no">Acme</dl>Translate me.',
        '<button><p translate="no">Acme</button>Translate me.',
        '<h1><span translate="no">Acme</h1><p>Translate me.</p>',
        # any heading's end tag ends the open heading
        '<h3><span translate="no">Acme</h2>Translate me.',
        '<div><section><div translate="no">Acme</section><p>Translate me.</p></div>',
        '<details><summary><span translate="no">Acme</details>Translate me.',
    ],
)
def test_the_end_tag_of_an_element_open_around_a_kept_one_ends_it(page):
    # The kept paragraph ran on past the list's (header's, heading's) end: the rest was kept in English.
    assert_only_translate_me_is_translated(page)


@pytest.mark.parametrize(
    "page",
    [
        '<p translate="no">Acme</div>Acme Pro</p><p>Translate me.</p>',
        '<p translate="no">Acme</ul>Acme Pro</p><p>Translate me.</p>',
        # a cell is a boundary: the <div> around the table is not where an end tag inside it looks
        '<div><table><tr><td><p translate="no">Acme</div>Acme Pro</table></div><p>Translate me.</p>',
    ],
)
def test_an_end_tag_of_an_element_that_is_not_open_is_ignored(page):
    # HTML ignores it; it ended the kept paragraph, and "Acme Pro" went to the model.
    assert_only_translate_me_is_translated(page)


@pytest.mark.parametrize(
    "page",
    [
        '<p><span translate="no">Acme</p><p>Translate me.</p>',
        '<p>Buy <abbr translate="no">ACME</abbr> now. <q translate="no">Acme</p>Translate me.',
        '<div><p>Buy <span translate="no">Acme<em>Pro</div><p>Translate me.</p>',
        # a block start tag ends the paragraph, and the span in it
        '<p><span translate="no">Acme<div>Translate me.</div>',
    ],
)
def test_an_inline_element_left_open_ends_with_its_paragraph(page):
    # The kept span ran on past </p>: the next paragraph stayed in English.
    _, given = translated_html(page)
    assert given[-1] == "Translate me."
    assert not any("Acme" in g for g in given), given


def test_inline_code_left_open_ends_with_its_paragraph():
    # An unclosed <kbd> kept the rest of the page as one span of its sentence.
    page = "<p>Press <kbd>Ctrl</p><p>Press it again.</p>"
    text, given = translated_html(page)
    assert given[-1] == "Press it again."
    assert text == "<p>PRESS <kbd>Ctrl</p><p>PRESS IT AGAIN.</p>"


def test_a_formatting_element_left_open_goes_on_as_html_reopens_it():
    # HTML puts a copy of a <b> or <a>, attributes and all, where the text goes on after a block
    # ends; so the next paragraph is inside a translate="no" <b> and kept.
    assert units('<p><b translate="no">Acme</p><p>Acme Pro</p></b><p>Translate me.</p>') == ["Translate me."]


def test_a_formatting_element_left_open_ends_with_its_table_cell():
    # HTML does not reopen it past the end of a cell: the next cell was kept in English.
    page = '<table><tr><td><b translate="no">Acme</td><td>Translate me.</table>'
    assert units(page) == ["Translate me."]


def test_an_end_tag_in_a_textarea_is_its_text():
    # A textarea holds text only: its "</div>" ends neither it nor the <div> around it.
    assert_only_translate_me_is_translated("<div><textarea>Type </div> here.</textarea></div><p>Translate me.</p>")


@pytest.mark.parametrize(
    "xmp",
    [
        "<xmp>if (a < b) { show('<b>Loading the page</b>'); }</xmp>",
        "<xmp>Keep this example &amp; its <p>markup</p> as written.</xmp>",
        '<xmp translate="yes">Keep this example.</xmp>',
        '<div translate="no"><xmp><p translate="yes">Keep this example.</p></xmp></div>',
        "<xmp/>Keep this example.</xmp>",
    ],
)
def test_xmp_is_raw_text_kept_as_written(xmp):
    # html.parser read its content as markup: the text between the tags went to the model.
    page = f"<p>Hello world.</p>{xmp}<p>Thank you.</p>"
    text, given = translated_html(page)
    assert given == ["Hello world.", "Thank you."]
    assert text == page.replace("Hello world.", "HELLO WORLD.").replace("Thank you.", "THANK YOU.")


# --- end tags HTML ignores, and quirks mode (a second adversarial round; expectations html5lib's) ---


@pytest.mark.parametrize(
    ("page", "sent"),
    [
        # A </div> in a table cell does not end a <div> around the table: the kept text after it stays.
        (
            '<!DOCTYPE html><div translate="no"><table><tr><td>cell</div>secret five</td></tr></table>'
            "kept six</div><p>hello</p>",
            ["hello"],
        ),
        (
            '<!DOCTYPE html><section translate="no"><table><tr><td>a</td></tr></section><tr><td>secret three</td>'
            "</tr></table></section><p>hello</p>",
            ["hello"],
        ),
        # ... nor does one between a table's rows: the <div> goes on to the page's end.
        (
            '<!DOCTYPE html><p>intro</p><div translate="no"><table><tr><td>cell</td></tr></div>secret two</table>'
            "<p>kept too</p>",
            ["intro"],
        ),
        # A </span> with a <div> open inside the span ends nothing (the span goes on).
        (
            '<!DOCTYPE html><p>intro</p><span translate="no"><div>x</span>kept</div></span><p>hello</p>',
            ["intro", "hello"],
        ),
    ],
)
def test_an_end_tag_html_ignores_ends_no_kept_element(page, sent):
    text, given = translated_html(page)
    assert given == sent
    assert "SECRET" not in text and "KEPT" not in text


def test_without_a_doctype_a_table_stays_in_the_kept_paragraph_it_is_in():
    """Quirks mode (no doctype: a fragment, an old page): a <table> does not end a <p>."""
    page = '<p translate="no">secret one<table><tr><td>cell two</td></tr></table><p>three</p>'
    assert translated_html(page)[1] == ["three"]
    assert translated_html("<!DOCTYPE html>" + page)[1] == ["cell two", "three"]
    old = '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">'
    assert translated_html(old + page)[1] == ["three"]
    with_system_id = old[:-1] + ' "http://www.w3.org/TR/html4/loose.dtd">'
    assert translated_html(with_system_id + page)[1] == ["cell two", "three"]
