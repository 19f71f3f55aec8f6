"""The translation pane's edits at the end of its text: the same text and marks as replacing the
whole text, without re-wrapping the whole document on every token of a translation."""

from __future__ import annotations

import random

import pytest
from textual.app import App, ComposeResult
from textual.document._wrapped_document import WrappedDocument
from textual.widgets import Select, TextArea

from llamadesk.app.chat.store import Store
from llamadesk.app.translate.confidence import low_confidence_spans
from llamadesk.app.tui.screens.translate import TranslateScreen
from llamadesk.app.tui.widgets.review_text_area import ReviewTextArea
from tests.tui.fake_translator import FRENCH, make_app
from tests.tui.waiting import wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]


class PaneApp(App):
    def compose(self) -> ComposeResult:
        yield ReviewTextArea(id="edited", soft_wrap=True, read_only=True)
        yield ReviewTextArea(id="replaced", soft_wrap=True, read_only=True)


def drawn_marks(pane: ReviewTextArea) -> list[list[tuple[int, int]]]:
    return [sorted(pane._marked_lines.get(row, [])) for row in range(pane.document.line_count)]


async def test_edits_at_the_end_match_replacing_the_whole_text():
    """A random run of replace_from_line and append (lines with a newline inside, empty ones, marks
    dropped with the lines they were on), each checked against show() of the text it should give."""
    rng = random.Random(7)
    words = ["le ", "train", " est", "peut-être", "", "gare\nproche", "à midi", "où ?"]
    async with PaneApp().run_test(size=(40, 20)) as pilot:
        edited = pilot.app.query_one("#edited", ReviewTextArea)
        replaced = pilot.app.query_one("#replaced", ReviewTextArea)
        text, marks = "", []  # what the pane should hold, and its marks as offsets into it

        def row_of(offset: int) -> int:
            return text.count("\n", 0, offset)

        for step in range(300):
            lines = text.split("\n")
            if rng.random() < 0.5:
                piece = rng.choice(words)
                edited.append(piece)
                text += piece
            else:
                # Any row that does not cut a marked stretch in two (the screen replaces from a
                # segment's first line, and a mark covers one segment).
                rows = [r for r in range(len(lines) + 1) if not any(row_of(s) < r <= row_of(e) for s, e in marks)]
                row = rng.choice(rows)
                new = [rng.choice(words) + rng.choice(words) for _ in range(rng.randrange(0, 4))]
                tail = "\n".join(new)
                local, position = [], 0
                for line in new:
                    if line and rng.random() < 0.4:
                        local.append((position, position + len(line)))
                    position += len(line) + 1
                prefix = "\n".join(lines[:row])
                base = len(prefix) + 1 if row else 0
                marks = [(s, e) for s, e in marks if row_of(s) < row] + [(s + base, e + base) for s, e in local]
                text = prefix + ("\n" + tail if tail else "") if row else tail
                edited.replace_from_line(row, tail, local)
            replaced.show(text, marks)
            assert edited.text == text, step
            assert edited.marked_text == replaced.marked_text == [text[s:e] for s, e in marks], step
            assert drawn_marks(edited) == drawn_marks(replaced), step
        await pilot.pause()


async def test_streaming_a_translation_shows_the_same_text_and_rewraps_only_the_end(monkeypatch, tmp_path):
    """Through the screen: after every update the pane holds the finished segments a line each and
    the one on show as far as it streamed, with the same marks as before (where it was rewritten
    whole); and the whole document was wrapped only when set whole (start and end), not per token."""
    full_wraps = []
    real_wrap = WrappedDocument.wrap
    monkeypatch.setattr(WrappedDocument, "wrap", lambda self, *a, **k: (full_wraps.append(1), real_wrap(self, *a, **k)))
    checked = []
    real_show_done = TranslateScreen._show_done

    def show_done_and_check(screen, output):
        real_show_done(screen, output)
        finished = "\n".join(result.translation.strip() for result in screen._done)
        assert output.text.startswith(finished)
        shown = output.text[len(finished) :]
        if finished and shown:
            assert shown.startswith("\n")
            shown = shown[1:]
        # The segment on show as far as it had streamed (its worker may have added more since).
        assert screen._partials.get(len(screen._done), "").strip().startswith(shown)
        spans = low_confidence_spans(finished, screen._done)
        assert output.marked_text == [finished[start:end] for start, end in spans]
        checked.append(len(screen._done))

    monkeypatch.setattr(TranslateScreen, "_show_done", show_done_and_check)
    paragraphs = [sentence for _ in range(15) for sentence in FRENCH]
    store = Store(tmp_path / "conversations.sqlite3")
    try:
        async with make_app(store, replies=FRENCH).run_test(size=(100, 30)) as pilot:
            await pilot.press("f6")
            await wait_until(pilot, lambda: isinstance(pilot.app.screen, TranslateScreen), what="the screen")
            screen = pilot.app.screen
            screen.query_one("#source-language", Select).value = "en"
            screen.query_one("#source", TextArea).text = "\n\n".join(paragraphs)
            await pilot.pause()
            full_wraps.clear()
            await pilot.press("ctrl+r")
            target = screen.query_one("#target", ReviewTextArea)
            await wait_until(pilot, lambda: not screen.running and screen.translation, timeout=60, what="the end")
            assert len(set(checked)) == len(paragraphs) + 1, "every segment was seen streaming and finished"
            # Each finished segment is one update; segment 0 always streams on show before it finishes.
            assert len(checked) > len(paragraphs), "tokens were shown as they streamed"
            assert len(full_wraps) <= 10, f"{len(full_wraps)} whole-document wraps for {len(checked)} updates"
            assert target.text == "\n\n".join(FRENCH[p] for p in paragraphs)
            assert len(target.marked_text) == 30  # the two 'perhaps' sentences, fifteen times each
    finally:
        store.close()


async def test_the_view_stays_where_the_reader_scrolled_while_text_is_added_and_when_it_ends():
    async with PaneApp().run_test(size=(60, 12)) as pilot:
        pane = pilot.app.query_one("#edited", ReviewTextArea)
        pane.show("\n".join(f"ligne {i}" for i in range(100)))
        await pilot.pause()
        pane.scroll_to(y=40, animate=False)
        await pilot.pause()
        for _ in range(5):
            pane.append(" mot")
            await pilot.pause()
        pane.replace_from_line(99, "fin\nsuite")
        await pilot.pause()
        assert pane.scroll_y == 40
        assert pane.text.endswith("ligne 98\nfin\nsuite")
        pane.show(pane.text + " (fin)")  # the finished translation, whole
        await pilot.pause()
        await pilot.pause()
        assert pane.scroll_y == 40
