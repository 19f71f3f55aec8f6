"""The translation screen advises what the app has (the source picker, ctrl+s asking before it
replaces a file), never the CLI's --from or --force, and leaves no finished-looking progress bar."""

from __future__ import annotations

import time

import pytest
from textual.widgets import Input, ProgressBar, Select, TextArea

from llamadesk.app.settings.user_config import Config
from llamadesk.app.tui.app import ENGINE_SHUTDOWN_TIMEOUT_S, LlamadeskApp
from llamadesk.app.tui.screens.dialogs import ConfirmScreen, TextInputScreen
from tests.tui.fake_translator import (
    FakeTranslatingEngine,
    make_app,
    open_translation,
)
from tests.tui.waiting import wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]

# Two short labels: the language detector cannot tell their language with confidence.
SHORT_CATALOG = 'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
SHORT_CATALOG += 'msgid "Good morning"\nmsgstr ""\n\nmsgid "Open file"\nmsgstr ""\n'


async def answer(pilot, dialog: type, text: str | None = None, key: str = "enter") -> None:
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, dialog), what=dialog.__name__)
    if text is not None:
        pilot.app.screen.query_one(Input).value = text
    await pilot.press(key)


def notes(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_an_undetectable_source_asks_for_the_picker_and_hides_the_bar(store, tmp_path):
    catalog = tmp_path / "b.po"
    catalog.write_text(SHORT_CATALOG, encoding="utf-8")
    app = make_app(store)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        screen.query_one("#source", TextArea).text = "Hello, the weather is nice today."
        await pilot.press("ctrl+r")
        progress = screen.query_one("#progress", ProgressBar)
        await wait_until(pilot, lambda: not screen.running and progress.percentage == 1.0, what="a translation")
        await pilot.press("ctrl+o")
        await answer(pilot, TextInputScreen, str(catalog))
        status = screen.query_one("#status")
        await wait_until(pilot, lambda: "could not tell" in str(status.render()), what="the failure")
        line = str(status.render())
        assert "choose the source language in the picker on the left" in line and "--from" not in line
        assert not progress.visible
        assert not screen.running
    assert not (tmp_path / "b.fr.po").exists()


async def test_ctrl_s_onto_an_existing_file_asks_and_replaces_it_only_on_yes(store, tmp_path):
    existing = tmp_path / "lf.md"
    existing.write_text("mine", encoding="utf-8")
    app = make_app(store)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        screen.translation = "NEW"
        await pilot.press("ctrl+s")
        await answer(pilot, TextInputScreen, str(existing))
        await answer(pilot, ConfirmScreen, key="n")
        await pilot.pause()
        assert existing.read_text(encoding="utf-8") == "mine"
        await pilot.press("ctrl+s")
        await answer(pilot, TextInputScreen, str(existing))
        await answer(pilot, ConfirmScreen, key="y")
        await wait_until(pilot, lambda: existing.read_text(encoding="utf-8") == "NEW", what="the file replaced")
        assert not any("--force" in note for note in notes(app))
        # A file that appears under the name a finished translation was to take is kept, and the
        # line says what the app can do about it.
        assert not screen._write(existing, "NEWER")
        assert existing.read_text(encoding="utf-8") == "NEW"
        await wait_until(pilot, lambda: any("ctrl+s saves the translation" in note for note in notes(app)))
        assert not any("--force" in note for note in notes(app))


class UnstoppableEngine(FakeTranslatingEngine):
    def request_stop(self) -> None:
        pass


async def test_quitting_mid_file_stops_the_translation_instead_of_waiting_for_it(store, tmp_path):
    source = tmp_path / "long.md"
    source.write_text("".join(f"Paragraph number {n} is here.\n\n" for n in range(1, 61)), encoding="utf-8")
    # As with the batched decoder, the engine's own stop does not end the file (only the job's cancel does).
    app = LlamadeskApp(
        store=store,
        config=Config(translate_parallel=1),
        engine_loader=lambda spec, settings: UnstoppableEngine(0.05),
        save_settings=False,
    )
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_translation(pilot)
        screen.query_one("#source-language", Select).value = "en"
        await pilot.press("ctrl+o")
        await answer(pilot, TextInputScreen, str(source))
        bar = screen.query_one("#progress", ProgressBar)
        await wait_until(
            pilot, lambda: bar.total and 1 <= bar.progress < bar.total, timeout=30, what="the file under way"
        )
        started = time.monotonic()
        await pilot.press("ctrl+q")
        quit_took = time.monotonic() - started
    assert quit_took < ENGINE_SHUTDOWN_TIMEOUT_S / 2, f"quitting took {quit_took:.1f} s"
    assert not (tmp_path / "long.fr.md").exists()
