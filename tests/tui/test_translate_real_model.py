"""The translation screen end to end with the real gemma3-270m starter through llama.cpp (no fakes)."""

from __future__ import annotations

import pytest
from textual.widgets import Select, TextArea

from llamadesk.app.chat.store import Store
from llamadesk.app.settings.user_config import Config
from llamadesk.app.tui.app import LlamadeskApp
from llamadesk.app.tui.screens.translate import TranslateScreen
from tests.language_check import language_of
from tests.tui.waiting import wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.slow, pytest.mark.timeout(300)]
SENTENCE = "The weather is very nice today, so we are going to the beach."


async def test_gemma_translates_an_english_sentence_to_french_in_the_screen(tmp_path):
    store = Store(tmp_path / "real.sqlite3")
    app = LlamadeskApp(store=store, config=Config(), save_settings=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6")
        screen = app.screen
        assert isinstance(screen, TranslateScreen)
        screen.query_one("#source-language", Select).value = "en"
        screen.query_one("#target-language", Select).value = "fr"
        screen.query_one("#source", TextArea).text = SENTENCE
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: not screen.running and screen.translation, timeout=180, what="the translation")
        out = screen.translation
        assert out.strip() and out != SENTENCE and "⟦" not in out
        assert language_of(out) == "fr", out
        [entry] = store.translations()
        assert entry.translation == out and (entry.source_language, entry.target_language) == ("en", "fr")
        assert app.host.info is not None and app.host.info.spec == "gemma3-270m"  # this mode's model, not chat's
        await pilot.press("ctrl+q")
    store.close()


PARAGRAPHS = [
    "The weather is very nice today.",
    "We are going to the beach with our friends.",
    "The train leaves the station at noon.",
    "My sister is reading a book in the garden.",
]


async def test_a_document_is_translated_several_segments_at_once_and_shown_in_order(tmp_path):
    from llamadesk.app.engine.types import LoadSettings
    from tests.conftest import PINNED_LOAD

    store = Store(tmp_path / "real.sqlite3")
    app = LlamadeskApp(
        store=store,
        config=Config(translate_parallel=4),
        save_settings=False,
        load_defaults=LoadSettings(**PINNED_LOAD),
    )
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("f6")
        screen = app.screen
        screen.query_one("#source-language", Select).value = "en"
        screen.query_one("#target-language", Select).value = "fr"
        screen.query_one("#source", TextArea).text = "\n\n".join(PARAGRAPHS)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.job is not None, timeout=120, what="the job")
        job = screen.job
        assert job.parallel is not None and len(job.parallel.translators) == 4  # one per paragraph
        shown: list[str] = []

        def finished() -> bool:
            shown.append(screen.query_one("#target", TextArea).text)
            return not screen.running and bool(screen.translation)

        await wait_until(pilot, finished, timeout=240, what="the translation")
        paragraphs = screen.translation.split("\n\n")
        assert len(paragraphs) == 4 and all(p.strip() and "⟦" not in p for p in paragraphs), screen.translation
        assert language_of(screen.translation) == "fr", screen.translation
        # The pane grew in document order: each text it showed starts with the one before it
        # finished (a later segment never appeared before an earlier one).
        done_lines = [p.strip() for p in paragraphs]
        for text in shown:
            complete = [line.strip() for line in text.splitlines() if line.strip()][:-1]  # the last may be streaming
            assert complete == done_lines[: len(complete)], (text, done_lines)
        await pilot.press("ctrl+q")
    store.close()
