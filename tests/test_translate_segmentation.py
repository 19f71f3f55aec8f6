"""Splitting documents and lines into pieces, sentences and chunks, and putting them back (no model)."""

from __future__ import annotations

from llamadesk.app.translate.segmentation import (
    assemble,
    pack_chunks,
    rewrap,
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
        assert len(rewrap(text, n).splitlines()) == n
        assert rewrap(text, n).split() == text.split()
    assert rewrap(text, 3, "  ").splitlines()[1].startswith("  ")
