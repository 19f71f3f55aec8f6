"""Splitting documents and lines into pieces, sentences and chunks, and putting them back (no model)."""

from __future__ import annotations

import re
import time

import pytest

from llamadesk.app.translate.protection import protect
from llamadesk.app.translate.rewrapping import rewrap
from llamadesk.app.translate.segmentation import (
    assemble,
    pack_chunks,
    split_document,
    split_lines,
    split_sentences,
)

DOC = """---
title: Guide
---
# Getting started ##

Install the package with pip. Then run the command below.

```bash
pip install llamadesk
echo "Do not translate me."
```

- First item
- [ ] Second item with a [link](https://example.com)
1. Numbered item

> A quoted sentence.

| Name | Description |
|------|:-----------:|
| foo  | The foo thing |

    indented code stays
---

This paragraph was wrapped at a fixed width by an editor, so
it runs over several lines of the source document and has to
stay wrapped in the translation too.
"""


def words(text: str) -> int:
    return len(text.split())


def translatable(pieces):
    return [p.source for p in pieces if p.translatable]


def test_document_pieces_join_back_to_the_input_exactly():
    pieces = split_document(DOC)
    assert "".join(p.text for p in pieces) == DOC


def test_markdown_markup_and_code_are_kept_out_of_the_model():
    texts = translatable(split_document(DOC))
    assert "Getting started" in texts
    assert "First item" in texts and "Second item with a [link](https://example.com)" in texts
    assert "A quoted sentence." in texts
    assert "Name" in texts and "The foo thing" in texts and "foo" in texts
    joined = "\n".join(texts)
    for kept in (
        "pip install",
        "Do not translate me",
        "indented code",
        "title: Guide",
        "|",
        "---",
        "##",
        "- [ ]",
        "1.",
    ):
        assert kept not in joined, kept


def test_translated_document_keeps_its_structure():
    pieces = split_document(DOC)
    chunks = pack_chunks(pieces, 64, words)
    out = assemble(pieces, chunks, [c.text.upper() for c in chunks])
    assert out.startswith("---\ntitle: Guide\n---\n# GETTING STARTED ##\n")
    assert '```bash\npip install llamadesk\necho "Do not translate me."\n```' in out
    assert "- FIRST ITEM\n- [ ] SECOND ITEM WITH A [LINK](HTTPS://EXAMPLE.COM)\n1. NUMBERED ITEM" in out
    assert "> A QUOTED SENTENCE." in out
    assert "| NAME | DESCRIPTION |\n|------|:-----------:|\n| FOO  | THE FOO THING |" in out
    assert "    indented code stays\n" in out
    assert out.count("\n") == DOC.count("\n")
    wrapped = out.split("THIS PARAGRAPH")[1]
    assert len(wrapped.strip().splitlines()) == 3, "a wrapped paragraph stays on as many lines"


def test_line_mode_keeps_every_line_and_blank_line_in_place():
    text = "First line.\n\n  Second line with %s.  \nThird\n\n\n"
    pieces = split_lines(text)
    assert "".join(p.text for p in pieces) == text
    chunks = pack_chunks(pieces, 64, words)
    out = assemble(pieces, chunks, [f"<{c.text}>" for c in chunks])
    assert out.split("\n") == ["<First line.>", "", "<  Second line with %s.>  ", "<Third>", "", "", ""]


def test_line_mode_never_merges_lines():
    pieces = split_lines("one\ntwo\nthree")
    chunks = pack_chunks(pieces, 1000, words)
    assert [c.text for c in chunks] == ["one", "two", "three"]


def test_sentences_split_at_ends_but_not_after_abbreviations():
    text = "Dr. Smith arrived at 10 a.m. today. He said hello, e.g. to Mr. Jones! Was it late? Yes."
    assert split_sentences(text) == [
        "Dr. Smith arrived at 10 a.m. today. ",
        "He said hello, e.g. to Mr. Jones! ",
        "Was it late? ",
        "Yes.",
    ]
    assert "".join(split_sentences(text)) == text


def test_sentences_with_markers_and_cjk():
    assert split_sentences("Done. ⟦1⟧ is next.") == ["Done. ", "⟦1⟧ is next."]
    assert split_sentences("今天很好。我们去公园。") == ["今天很好。", "我们去公园。"]


def test_packing_fills_chunks_up_to_the_budget_and_no_further():
    para = "One two three. Four five six. Seven eight nine. Ten eleven twelve."
    pieces = split_document(para)
    chunks = pack_chunks(pieces, 6, words)
    assert [c.text for c in chunks] == ["One two three. Four five six.", "Seven eight nine. Ten eleven twelve."]
    assert all(words(c.text) <= 6 for c in chunks)
    assert pack_chunks(pieces, 100, words)[0].text == para, "a paragraph that fits is one chunk"


def test_a_sentence_too_long_is_cut_at_clauses_then_words():
    sentence = "alpha beta gamma, delta epsilon zeta, eta theta iota kappa lambda mu nu"
    chunks = pack_chunks(split_document(sentence), 4, words)
    assert all(words(c.text) <= 4 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == sentence.split()
    assert chunks[0].text == "alpha beta gamma,"


def test_rewrap_gives_the_requested_number_of_lines():
    text = "one two three four five six seven eight nine ten eleven twelve"
    for n in (1, 2, 3, 5):
        assert len(rewrap(text, ["\n"] * (n - 1)).splitlines()) == n
        assert rewrap(text, ["\n"] * (n - 1)).split() == text.split()
    assert rewrap(text, ["\n  ", "\n  "]).splitlines()[1].startswith("  ")


def kept_and_translated(document: str) -> list[str]:
    pieces = split_document(document)
    assert "".join(p.text for p in pieces) == document
    return translatable(pieces)


def test_a_fence_inside_a_nested_list_item_is_code():
    document = (
        "- Step one:\n  - Install the tool:\n    ```bash\n    pip install the-tool --upgrade\n"
        '    echo "Please restart the computer now"\n    ```\n- Done now.\n'
    )
    assert kept_and_translated(document) == ["Step one:", "Install the tool:", "Done now."]


def test_a_fence_indented_inside_code_does_not_close_it():
    # A Markdown example of a list item's fence: its indented ``` is the example's text. Read as
    # the closing fence, "Run it." went to the model and everything after was kept untranslated.
    document = (
        "To indent a fence:\n\n```markdown\n1. Install it:\n\n    ```sh\n    pip install tool\n    ```\n\n"
        "2. Run it.\n```\n\nThe example shows the whole list.\n\n> ```\n>     ```\n> quoted code\n> ```\n\nDone.\n"
    )
    assert kept_and_translated(document) == ["To indent a fence:", "The example shows the whole list.", "Done."]


def test_display_math_is_kept_out_of_the_model():
    # The model rewrote E = mc^2 as E = m²: LaTeX is not text to translate.
    document = (
        "The energy is:\n\n$$\nE = mc^2\n$$\n\n$$a^2 + b^2 = c^2$$\n\nThat is all.\n\n"
        "$$ costs nothing here, no closer follows\n\nA paragraph that ends in $$\n"
    )
    assert kept_and_translated(document) == [
        "The energy is:",
        "That is all.",
        "$$ costs nothing here, no closer follows",
        "A paragraph that ends in $$",
    ]
    code = "```\n$$\n```\n\nText after.\n\n$$\nx\n$$\n"  # inside a fence, $$ is the code's
    assert kept_and_translated(code) == ["Text after."]


def test_a_fence_inside_a_blockquote_is_code():
    document = "> **Note:** run this:\n>\n> ```sh\n> rm -rf build --force\n> ```\n> That is all.\n\nAfter.\n"
    assert kept_and_translated(document) == ["**Note:** run this:", "That is all.", "After."]


def test_a_list_item_s_second_paragraph_is_prose_and_code_is_four_columns_further():
    document = (
        "1.  Install the package.\n\n    The package is available for every platform.\n\n"
        "2.  Run the program.\n\n        code in the item\n\nBack to text.\n\n    code after the list\n"
    )
    assert kept_and_translated(document) == [
        "Install the package.",
        "The package is available for every platform.",
        "Run the program.",
        "Back to text.",
    ]


def test_toml_front_matter_and_a_bom_before_front_matter_are_kept():
    assert kept_and_translated('+++\ntitle = "My page"\ndraft = false\n+++\n\nHello world.\n') == ["Hello world."]
    assert kept_and_translated("\ufeff---\ntitle: My page\nlayout: post\n---\n\nHello world.\n") == ["Hello world."]
    assert kept_and_translated("\ufeff# Title\n\nText.\n") == ["Title", "Text."]


def test_a_footnote_s_text_is_translated_and_a_setext_underline_is_kept():
    document = "Title\n=====\n\nSee the note.[^1]\n\n[^1]: The guide is on the website.\n[docs]: https://example.com\n"
    assert kept_and_translated(document) == ["Title", "See the note.[^1]", "The guide is on the website."]


def test_a_script_or_style_block_in_markdown_is_kept_to_its_end_tag():
    document = (
        "Intro text.\n\n<script>\nconst message = 'Hello there';\nalert(message);\n</script>\n\n"
        "<style>body { color: red; }</style>\n\nOutro text.\n"
    )
    assert kept_and_translated(document) == ["Intro text.", "Outro text."]


def test_a_heading_s_attributes_are_kept_outside_its_text():
    # Inside the text, the model moved the anchor into the words: "## Installer le {#install}tool".
    document = "## Install the tool {#install}\n\n## Getting started {#getting-started .unnumbered}\n"
    assert kept_and_translated(document) == ["Install the tool", "Getting started"]


def test_html_blocks_that_run_to_an_end_marker_are_kept_whole():
    # CommonMark's HTML blocks 2-5 (a comment, <?...?>, <!DECLARATION>, CDATA) hide or hold no prose.
    document = (
        "<?php\necho 'Hello there';\n?>\n<!DOCTYPE html>\n\n<![CDATA[\nSome raw data here\n]]>\n\n"
        "<!--\nA hidden note\n-->\nShown.\n\n<pre>\nKeep this as it is\n</pre>\n"
    )
    assert kept_and_translated(document) == ["Shown."]


def test_rewrap_keeps_a_span_with_line_breaks_whole_and_the_line_endings():
    span = '<img src="a.png"\n     alt="A picture">'
    out = rewrap(f"one two three {span} four five six seven eight", ["\r\n  "] * 2, [span])
    assert span in out and len(out.splitlines()) == 4
    assert out.replace(span, "").count("\r\n") == 2 and "\r\n  " in out


def test_pieces_join_back_whatever_the_line_endings():
    structures = (
        DOC,
        "Key | Meaning\n--- | ---\nEsc | Closes\n\n> - Item\n> ### Heading\n\nPlease read\n[the\nguide](x.md) now.\n",
        '<img src="a"\n  alt="b">\n\n<!-- a\nsecret -->\nText\\\nmore.\n',
    )
    for document in structures:
        for ending in ("\n", "\r\n", "\r"):
            text = document.replace("\n", ending)
            pieces = kept_and_translated(text)
            assert not [piece for piece in pieces if "\r" in piece], pieces


# Each of these took time quadratic in its run of spaces (33 s for a heading with 30,000 spaces,
# 69 s for "<div" and 30,000): a pattern tried every split of the run against every length after it.
LONG_RUN_DOCUMENTS = {
    "heading": "# Title{run}end\n\nSome text.\n",
    "html tag": "<div{run}x\n\nSome text.\n",
    "table delimiter": "Some text\n---{run}x\n",
    "list item": "-{run}\n\nSome text.\n",
    "footnote": "[^1]:{run}\n\nSome text.\n",
    "wrapped paragraph": "A line long enough to be wrapped for width by an editor{run}\nand the next line.\n",
    "abbreviations": "Some text, e.g. A{run}\n",
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("shape", sorted(LONG_RUN_DOCUMENTS))
def test_a_long_run_of_spaces_splits_in_linear_time(shape):
    document = LONG_RUN_DOCUMENTS[shape]

    def split_and_protect(size: int) -> float:
        text = document.format(run=" " * size) if shape != "abbreviations" else "e.g. A " * (size // 7)
        started = time.perf_counter()
        pieces = split_document(text)
        for piece in pieces:
            protect(piece.source)
            split_sentences(piece.source)
        assert "".join(piece.text for piece in pieces) == text
        return time.perf_counter() - started

    small, large = split_and_protect(20_000), split_and_protect(200_000)  # minutes each, before
    assert large < 30 * max(small, 0.001)  # ten times the text, about ten times the time


def test_rewrap_never_starts_a_line_with_block_markup():
    # Cut before "-", "le fichier - puis il ouvre" made a list item of "- puis il ouvre".
    text = "le programme lit vite le fichier de configuration au démarrage - puis il ouvre la fenêtre "
    text += "principale > et # affiche 1. la liste + des fichiers * récents"
    for n_lines in range(2, 9):
        lines = rewrap(text, ["\n"] * (n_lines - 1)).split("\n")
        assert " ".join(lines).split() == text.split()
        assert not [line for line in lines[1:] if re.match(r"[-+*>#]\s|\d+[.)]\s|>", line)], lines
    assert rewrap("un - deux", ["\n"]) == "un -\ndeux"  # no word to move down: the marker goes up


def test_rewrap_puts_each_line_break_back_as_it_was():
    out = rewrap("one two three four five six", ["\r\n> ", "\n>   "])
    assert out == "one two\r\n> three four\n>   five six"
