"""HTML's translate attribute is inherited, and an element's own translate="yes" inside a
translate="no" one makes it (and what it holds, unless that says no again) translatable: pages
with a scripted model (fast), every byte marked no kept as written.
"""

from __future__ import annotations

import pytest

from llamadesk.app.translate import choose_strategy, resolve_language
from llamadesk.app.translate.formats.html import read_html
from llamadesk.app.translate.segment import SegmentResult
from tests.translate_fakes import translated_html

EN, FR = resolve_language("en"), resolve_language("fr")
FEW_SHOT = choose_strategy({}, has_chat_template=False)


def test_an_element_marked_yes_inside_one_marked_no_is_translated():
    # It stayed in English: the translate="no" element kept everything in it, and a page whose
    # only text was such an element "had no text for people to translate".
    page = (
        '<div translate="no"><p>Acme Widget Deluxe</p><p translate="yes">Welcome to our shop.</p>'
        '<img translate="yes" alt="Our logo"><img alt="The brand mark"></div>'
    )
    text, given = translated_html(page)
    assert text == (
        '<div translate="no"><p>Acme Widget Deluxe</p><p translate="yes">WELCOME TO OUR SHOP.</p>'
        '<img translate="yes" alt="OUR LOGO"><img alt="The brand mark"></div>'
    )
    assert not any("Acme" in g or "brand" in g for g in given), given


def test_inside_a_sentence_the_yes_part_of_a_kept_span_is_translated_with_the_sentence():
    page = '<p>Buy <span translate="no">Acme <em translate="yes">blue widget</em> Deluxe</span> today.</p>'
    text, given = translated_html(page)
    assert text == '<p>BUY <span translate="no">Acme <em translate="yes">BLUE WIDGET</em> Deluxe</span> TODAY.</p>'
    assert len(given) == 1 and "blue widget" in given[0] and "Acme" not in given[0], given


def test_what_a_yes_element_holds_may_say_no_again():
    page = (
        '<div translate="no">Kept <p translate="yes">Use the <span translate="no">Acme</span> tool '
        "<b>now</b>.<pre>keep   this</pre></p> kept too</div>"
    )
    text, given = translated_html(page)
    assert text == (
        '<div translate="no">Kept <p translate="yes">USE THE <span translate="no">Acme</span> TOOL '
        "<b>NOW</b>.<pre>keep   this</pre></p> kept too</div>"
    )
    assert not any("Acme" in g or "keep" in g or "Kept" in g for g in given), given


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        # a <p> ends the translate="yes" <p>: the next one inherits the <div>'s no
        (
            '<div translate="no"><p translate="yes">Open the window.<p>Acme Pro</div><p>Close it.</p>',
            '<div translate="no"><p translate="yes">OPEN THE WINDOW.<p>Acme Pro</div><p>CLOSE IT.</p>',
        ),
        # a <li> ends both the kept item and the yes paragraph in it: the next item is translated
        (
            '<ul><li translate="no">Acme <p translate="yes">Open the window.<li>Save your work.</ul>',
            '<ul><li translate="no">Acme <p translate="yes">OPEN THE WINDOW.<li>SAVE YOUR WORK.</ul>',
        ),
        # the cells after the yes cell, and the next row, inherit the table's no
        (
            '<table translate="no"><tr><td translate="yes">Open the window.<td>Acme Pro<tr><td>Acme Lite'
            "</table><p>Close it.</p>",
            '<table translate="no"><tr><td translate="yes">OPEN THE WINDOW.<td>Acme Pro<tr><td>Acme Lite'
            "</table><p>CLOSE IT.</p>",
        ),
        # a list inside the yes item: its own items (without end tags) are the yes item's
        (
            '<ul translate="no"><li translate="yes">Open the window.<ul><li>Save your work.</ul>'
            "Then close it.<li>Acme Pro</ul><p>Go home.",
            '<ul translate="no"><li translate="yes">OPEN THE WINDOW.<ul><li>SAVE YOUR WORK.</ul>'
            "THEN CLOSE IT.<li>Acme Pro</ul><p>GO HOME.",
        ),
        # a list inside a kept item: its items do not end the kept item, whose tail stays kept
        (
            '<ul><li translate="no">Acme<ul><li translate="yes">Open the window.<li>Acme Pro</ul>'
            "Acme Lite<li>Save your work.</ul>",
            '<ul><li translate="no">Acme<ul><li translate="yes">OPEN THE WINDOW.<li>Acme Pro</ul>'
            "Acme Lite<li>SAVE YOUR WORK.</ul>",
        ),
    ],
)
def test_a_yes_element_ends_where_html_ends_it_without_its_end_tag(page, expected):
    text, given = translated_html(page)
    assert text == expected
    assert not any("Acme" in g for g in given), given


def test_an_empty_translate_value_means_yes_and_an_unknown_one_inherits():
    page = (
        '<div translate="no"><p translate="">Open it.</p><p translate>Close it.</p><p translate="maybe">Acme</p></div>'
    )
    text, _ = translated_html(page)
    assert text == (
        '<div translate="no"><p translate="">OPEN IT.</p><p translate>CLOSE IT.</p><p translate="maybe">Acme</p></div>'
    )


def test_a_page_with_yes_inside_no_comes_back_byte_for_byte_when_left_as_it_is():
    page = (
        '<html lang="en"><body><div translate="no">Acme <p translate="yes">Buy <span translate="no">Acme '
        '<b translate="yes" title="Bold  words">bold</b> </span> now.<li>Acme</div></body></html>'
    )
    document = read_html(page.encode(), "page.html")
    assert [unit.text for unit in document.units] == ["Bold words", "Buy {{§1}}{{§2}}bold{{§3}}{{§4}} now."]
    assert document.render([SegmentResult(u.text, u.text) for u in document.units]) == page


def test_a_list_inside_a_kept_item_does_not_end_it():
    # The nested list's first <li> ended the translate="no" item: its other items and the item's
    # tail went to the model.
    page = '<ul><li translate="no">Acme<ul><li>Acme Pro<li>Acme Lite</ul>Acme Max<li>Save your work.</ul>'
    text, given = translated_html(page)
    assert text == '<ul><li translate="no">Acme<ul><li>Acme Pro<li>Acme Lite</ul>Acme Max<li>SAVE YOUR WORK.</ul>'
    assert given == ["Save your work."]


def test_the_next_cell_ends_a_paragraph_left_open_in_a_cell():
    # The translate="no" <p> went on into the next cells, their own text kept from the model; and a
    # translate="yes" <p> went on into cells that the row's translate="no" keeps.
    page = (
        '<table><tr><td><p translate="no">Acme<td>Open the window.</table>'
        '<table><tr translate="no"><td><p translate="yes">Close it.<td>Acme Pro</table>'
    )
    text, given = translated_html(page)
    assert text == (
        '<table><tr><td><p translate="no">Acme<td>OPEN THE WINDOW.</table>'
        '<table><tr translate="no"><td><p translate="yes">CLOSE IT.<td>Acme Pro</table>'
    )
    assert not any("Acme" in g for g in given), given
