"""HTML read as browsers read it where html.parser does not: a "/" on a non-void start tag, a page
that ends inside a comment or tag, translate values HTML does not know (found by an adversarial
tester; each was sent to the model, or kept, against what a browser shows)."""

from __future__ import annotations

import time

import pytest

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.translate.formats.html import read_html
from tests.translate_fakes import translated_html


def units(page: str) -> list[str]:
    return [unit.text for unit in read_html(page.encode(), "page.html").units]


SCRIPT = 'if (a < b && c) { document.write("<p>Loading the page</p>"); }'


@pytest.mark.parametrize(
    "page",
    [
        f"<p>Hello world.</p><script/>{SCRIPT}</script><p>Thank you.</p>",
        "<p>Hello world.</p><pre/>Keep this preformatted sentence.</pre><p>Thank you.</p>",
        "<p>Hello world.</p><textarea/>Keep this typed sentence.</textarea><p>Thank you.</p>",
        '<p>Hello world.</p><div translate="no"/>Keep this product name.</div><p>Thank you.</p>',
    ],
    ids=["script", "pre", "textarea", "translate-no-div"],
)
def test_a_slash_on_a_non_void_start_tag_is_ignored_as_browsers_ignore_it(page):
    # <script/> was read as an empty script: the code after it went to the model ("if" came back
    # "si") and was escaped, and the script no longer ran.
    text, given = translated_html(page)
    assert given == ["Hello world.", "Thank you."]
    assert text == page.replace("Hello world.", "HELLO WORLD.").replace("Thank you.", "THANK YOU.")


def test_a_slash_closes_an_element_inside_svg_as_in_xml():
    # Foreign content keeps XML's empty elements: read as open, an <svg/> would keep the rest.
    assert units("<p>Hello world.</p><svg/><p>Second sentence.</p>") == ["Hello world.", "Second sentence."]
    drawing = '<svg><path d="M0 0"/><g/><text>Label</text></svg>'
    assert units(f"<p>Hello world.</p>{drawing}<p>Second sentence.</p>") == ["Hello world.", "Second sentence."]


def test_a_page_that_ends_inside_a_comment_keeps_it_hidden():
    # The hidden draft went to the model and came back as visible, escaped text.
    page = "<p>Hello world.</p>\n<!-- <p>Secret draft: prices rise next week.</p>\n"
    text, given = translated_html(page)
    assert given == ["Hello world."]
    assert text == page.replace("Hello world.", "HELLO WORLD.")


def test_a_page_that_ends_inside_a_tag_keeps_it_as_written():
    page = '<p>Hello world.</p><a href="x'
    text, given = translated_html(page)
    assert given == ["Hello world."] and text == page.replace("Hello world.", "HELLO WORLD.")


@pytest.mark.parametrize("opener", ["<!--", "<a"])
def test_a_megabyte_of_unfinished_openers_is_read_at_once(opener):
    # html.parser's close() took time quadratic in them: 2.6 s at 80 KB, over 200 s at 1 MB.
    page = "<p>Hello world.</p>" + opener * (1_000_000 // len(opener))
    started = time.perf_counter()
    assert units(page) == ["Hello world."]
    assert time.perf_counter() - started < 60  # it takes well under a second; the old code, minutes


@pytest.mark.parametrize("value", ['" no "', "\"'no'\"", '"nope"', '"NO "'])
def test_a_translate_value_html_does_not_know_inherits(value):
    # " no " and "'no'" were read as "no": the paragraph was kept, and a page of it refused.
    assert units(f"<p translate={value}>Invalid values inherit.</p>") == ["Invalid values inherit."]


@pytest.mark.parametrize("value", ['"NO"', '"No"', "no", "'no'"])
def test_no_in_any_ascii_case_and_quoting_keeps_the_element(value):
    assert units(f"<p translate={value}>Kept as written.</p><p>Translated.</p>") == ["Translated."]


@pytest.mark.parametrize("comment", ["<!-->", "<!--->", "<!--x--!>", "<!-- x -->"])
def test_comments_end_where_html_ends_them(comment):
    # "<!-->" went to the model with the text after it (and came back escaped); after "--!>"
    # the page read on as a comment to the next "-->", keeping the paragraph after it.
    page = f"<p>Hello world.</p>{comment}<p>Visible after a comment.</p><!-- real -->"
    text, given = translated_html(page)
    assert given == ["Hello world.", "Visible after a comment."]
    assert text == page.replace("Hello world.", "HELLO WORLD.").replace("after a comment.", "AFTER A COMMENT.").replace(
        "Visible", "VISIBLE"
    )


@pytest.mark.parametrize(
    "page",
    [
        '<div translate="no"><div translate="yes">' * 12_000 + "Hello world.",
        '<ul><li translate="no">' + "<ul>" * 100_000 + "Hello" + "</b>" * 100_000,
    ],
    ids=["translate-regions", "lists-in-a-kept-item"],
)
def test_a_page_nesting_thousands_deep_is_refused_at_once(page):
    # Each token looked at every open region: 69 s for the first page, 83 s for the second.
    started = time.perf_counter()
    with pytest.raises(BadInputError, match="nests more than 512"):
        read_html(page.encode(), "deep.html")
    assert time.perf_counter() - started < 60  # well under a second now


def test_a_page_nesting_a_few_hundred_deep_is_read():
    page = '<div translate="no"><div translate="yes">' * 200 + "Hello world." + "</div></div>" * 200
    assert units(page) == ["Hello world."]


@pytest.mark.parametrize("part", ["<td>", "<tr>", "<th>", "<tbody>", "</td>"])
def test_a_table_part_outside_a_table_ends_nothing(part):
    # HTML ignores it there; it ended a translate="no" paragraph, and the kept text after it was sent.
    page = f'<p translate="no">Keep this text.{part}Still kept text here.</p><p>Translated.</p>'
    text, given = translated_html(page)
    assert given == ["Translated."] and text == page.replace("Translated.", "TRANSLATED.")


def test_cells_inside_a_table_still_end_what_html_ends():
    page = '<table><tr><td><p translate="no">Kept in a cell.<td>Next cell is translated.</table>'
    assert units(page) == ["Next cell is translated."]
