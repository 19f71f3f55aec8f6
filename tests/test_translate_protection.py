"""Protection and restoration of every kind of span that must survive translation (no model)."""

from __future__ import annotations

import time

import pytest

from llamadesk.app.translate.markdown_links import broken_links
from llamadesk.app.translate.protection import (
    find_spans,
    lost_spans,
    missing_markers,
    piecewise_parts,
    protect,
    restore_markers,
)

CASES = [
    # (kind, text, the span that must be protected)
    ("printf", "Hello %s, welcome", "%s"),
    ("printf", "You have %d items", "%d"),
    ("printf", "Value %1$d of %2$s", "%1$d"),
    ("printf", "Width %-5.2f here", "%-5.2f"),
    ("printf", "Hello %(name)s, welcome", "%(name)s"),
    ("printf", "Done: 50%% of it", "%%"),
    ("printf", "Count %lld now", "%lld"),
    ("quoted-placeholder", "“%(pk)s” is not a valid value", "“%(pk)s”"),
    ("quoted-placeholder", 'Value "{0}" is wrong', '"{0}"'),
    ("format", "Hello {name}, welcome", "{name}"),
    ("format", "Item {0} of {1}", "{0}"),
    ("format", "Total {0:.2f} euros", "{0:.2f}"),
    ("format", "Path ${HOME} here", "${HOME}"),
    ("format", "Empty {} slot", "{}"),
    ("url", "See https://example.com/a?b=1&c=2 for more", "https://example.com/a?b=1&c=2"),
    ("url", "Or www.example.org today", "www.example.org"),
    ("email", "Write to help@example.com today", "help@example.com"),
    ("inline-code", "Run `pip install llamadesk` first", "`pip install llamadesk`"),
    ("inline-code", "Use ``a `tick` b`` here", "``a `tick` b``"),
    ("link-open", "Read [the guide](https://example.com/guide) now", "["),
    ("link-open", "An ![old logo](logo.png) here", "!["),
    ("link-target", "Read [the guide](https://example.com/guide) now", "](https://example.com/guide)"),
    ("link-target", 'Read [the guide](guide.md "Title") now', '](guide.md "Title")'),
    ("link-target", "Read [the guide][ref] now", "][ref]"),
    # every title and destination form CommonMark allows (each went to the model as text)
    ("link-target", "Read [our FAQ](faq.md 'Frequently asked') now", "](faq.md 'Frequently asked')"),
    ("link-target", "Read [the PDF](<docs/a b.pdf>) now", "](<docs/a b.pdf>)"),
    (
        "link-target",
        "Read [the blog](https://example.com/blog (Our blog)) now",
        "](https://example.com/blog (Our blog))",
    ),
    ("link-reference", "See [CONTRIBUTING] first", "[CONTRIBUTING]"),
    ("autolink", "Go to <https://example.com> now", "<https://example.com>"),
    ("autolink", "Write to <mail@example.com> now", "<mail@example.com>"),
    ("autolink", "Join <irc://irc.example.org/help> now", "<irc://irc.example.org/help>"),
    ("html-tag", "This is <b>bold</b> text", "<b>"),
    ("html-tag", "Fish &amp; chips", "&amp;"),
    ("template-tag", "Hello {{ user.name }} there", "{{ user.name }}"),
    ("emphasis", "This is **very** important", "**"),
    ("emphasis", "This is _quite_ nice", "_"),
    ("emphasis", "This is ***strong emphasis*** here", "***"),
    ("emphasis", "This is ___strong emphasis___ here", "___"),
    # a code span may run over a line break (a paragraph's lines given to the model as one)
    ("inline-code", "Then run `make\n   install` as root", "`make\n   install`"),
    # a heading's anchor: translated, every link to "#getting-started" broke
    ("attributes", "Getting started {#getting-started .unnumbered}", "{#getting-started .unnumbered}"),
    # a table cell's escaped pipe: the model dropped the backslash, and the table gained a column
    ("markdown-escape", r"| either a \| b | yes |", r"\|"),
    ("markdown-escape", r"Two \*stars\* here", r"\*"),
]


@pytest.mark.parametrize("kind,text,span", CASES, ids=[f"{k}:{s}" for k, _, s in CASES])
def test_every_kind_of_span_is_hidden_and_restored(kind, text, span):
    protected = protect(text)
    assert span not in protected.text, "the model must not see the span"
    assert any(s.original == span and s.kind == kind for s in protected.spans)
    assert protected.restore(protected.text) == text
    # A translation that moves the markers around still restores every span.
    moved = " ".join(reversed(protected.text.split(" ")))
    assert span in protected.restore(moved)


def test_every_link_form_is_checked_to_still_be_a_link():
    source = "See [our FAQ](faq.md 'Asked'), [the PDF](<a b.pdf>) and [the blog](blog.md (Our blog))."
    assert broken_links(source, source.replace("our FAQ", "notre FAQ")) == []
    for target in ("](faq.md 'Asked')", "](<a b.pdf>)", "](blog.md (Our blog))"):
        broken = source.replace(target, target.replace("](", "] ("))
        assert broken_links(source, broken) == [f"link broken: […{target}"], target


def test_a_code_span_does_not_run_over_a_blank_line():
    assert find_spans("Use `a\n\nb` here") == []


def test_a_backslash_before_a_letter_is_not_an_escape():
    assert find_spans(r"Save it in C:\Users\me first") == []


def test_plain_words_and_percentages_are_not_spans():
    for text in ("It is 100% sure", "snake_case_name stays", "2*3 * 4 = 24", "A 50 % discount"):
        assert protect(text).spans == (), text


def test_leading_and_trailing_whitespace_and_line_breaks_are_kept_outside():
    protected = protect("  \tHello %s  \n")
    assert protected.text == "Hello ⟦1⟧"
    assert protected.leading == "  \t" and protected.trailing == "  \n"
    assert protected.restore("Bonjour ⟦1⟧") == "  \tBonjour %s  \n"


def test_missing_and_duplicated_markers_are_reported():
    protected = protect("Hello %s, you have %d messages")
    assert missing_markers(protected, "Bonjour ⟦1⟧, vous avez ⟦2⟧ messages") == []
    assert [s.original for s in missing_markers(protected, "Bonjour, vous avez ⟦2⟧ messages")] == ["%s"]
    assert [s.original for s in missing_markers(protected, "⟦1⟧ ⟦1⟧ ⟦2⟧")] == ["%s"]


def test_made_up_markers_are_dropped_on_restore():
    protected = protect("Hello %s")
    assert protected.restore("Bonjour ⟦1⟧ ⟦7⟧") == "Bonjour %s "


def test_lost_spans_checks_the_restored_text_independently():
    source = "Send %(count)d files to me@example.com"
    assert lost_spans(source, "Envoyer %(count)d fichiers à me@example.com") == []
    assert lost_spans(source, "Envoyer (count)d fichiers à me@example.com") == ["%(count)d"]
    assert lost_spans("  Hello", "Bonjour") == ["whitespace"]
    # Each span counted as often as it stands: one of two %s gone is lost.
    assert lost_spans("%s and %s", "%s et") == ["%s"]


def test_lost_spans_of_a_segment_with_thousands_of_spans():
    # A segment kept as it was (too long for the context) can hold 100,000 inline tags; counting each
    # distinct span through the whole text again took hours there.
    source = " ".join(f"{{{{§{n}}}}}x" for n in range(100000))
    assert lost_spans(source, source) == []
    part = source[: source.index("{{§2000}}")]
    assert lost_spans(part, part.replace("{{§123}}", "")) == ["{{§123}}"]


def test_text_that_looks_like_a_marker_is_itself_protected():
    protected = protect("Keep ⟦9⟧ as is")
    assert protected.restore(protected.text) == "Keep ⟦9⟧ as is"
    assert protected.spans[0].original == "⟦9⟧"


def test_glossary_terms_become_markers_restored_as_their_translation():
    protected = protect("Open a Pull Request on GitHub", {"pull request": "demande de fusion"})
    assert "Pull Request" not in protected.text
    assert protected.restore(protected.text) == "Open a demande de fusion on GitHub"


def test_piecewise_parts_split_at_markers():
    protected = protect("Hello %s, you have %d new messages")
    parts = piecewise_parts(protected)
    assert parts == [("Hello ", True), ("⟦1⟧", False), (", you have ", True), ("⟦2⟧", False), (" new messages", True)]


def test_find_spans_is_ordered_and_non_overlapping():
    spans = find_spans("Mail a@b.co, see https://x.org/%s and `code {x}`")
    assert [k for _, _, k in spans] == ["email", "url", "inline-code"]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_a_link_is_two_markers_around_its_text():
    # The model sees the shape of the fixed examples ("Read the ⟦1⟧user guide⟦2⟧"): it can move
    # or translate the text, but not put a space between "]" and "(" any more.
    protected = protect("See [the docs](https://example.com) and [`make`](Makefile).")
    assert protected.text == "See ⟦1⟧the docs⟦2⟧ and ⟦3⟧⟦4⟧⟦5⟧."
    assert protected.restore("Voir ⟦1⟧la documentation⟦2⟧ et ⟦3⟧⟦4⟧⟦5⟧.") == (
        "Voir [la documentation](https://example.com) et [`make`](Makefile)."
    )


HOSTILE_LINKS = ["[a" * 20000, "[" + "a" * 40000, "[a](" * 10000, "[[a]" * 10000, "[a](b" * 10000 + ")"]


@pytest.mark.parametrize("text", HOSTILE_LINKS, ids=range(len(HOSTILE_LINKS)))
def test_link_patterns_stay_linear_on_hostile_text(text):
    started = time.perf_counter()
    protect(text)
    broken_links(text, text)
    assert time.perf_counter() - started < 5  # ~0.3 s here; a backtracking pattern would take minutes


def test_a_code_span_closes_with_a_backtick_run_of_its_own_length():
    # "```grep x``` here" was protected as "```grep x``" and left a lone backtick to the model.
    protected = protect("Use ```grep x``` here, ``a ` b`` there and ``` c`` d``` too; `` alone.")
    assert [span.original for span in protected.spans] == ["```grep x```", "``a ` b``", "``` c`` d```"]
    assert protected.text == "Use ⟦1⟧ here, ⟦2⟧ there and ⟦3⟧ too; `` alone."


@pytest.mark.timeout(20)
def test_openers_that_nothing_closes_take_linear_time():
    # each unclosed "<!--", "{{" or "⟦" was scanned to the end of the text: minutes at 200 KB
    for opener in ("<!--", "{{", "⟦", "a."):
        text = opener * 50_000
        protected = protect(text)
        assert restore_markers(protected.text, protected.spans) == text
