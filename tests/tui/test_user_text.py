"""Text from users and models is drawn as it is written: never read as Rich markup ("[/foo] hi" once
ended the app, "[red]x" came out red, "[@click=app.quit]" ran an action), and its control
characters are shown, never sent to the terminal (an OSC in a title renamed the terminal window,
"ESC [2J" in a message wiped the screen)."""

from __future__ import annotations

import pytest
from textual.content import Content
from textual.widgets import Input, Label, OptionList, TextArea
from textual.widgets import Markdown as MarkdownWidget

from llamadesk.app.settings.user_config import Config
from llamadesk.app.tui.screens.dialogs import ConfirmScreen, TextInputScreen
from llamadesk.app.tui.screens.translate import TranslateScreen
from llamadesk.app.tui.screens.translation_history import TranslationHistoryScreen
from llamadesk.app.tui.widgets.message_view import MessageView
from tests.tui.chat_pilot import ask
from tests.tui.fake_engine import FakeLoader
from tests.tui.fake_translator import make_app as make_translating_app
from tests.tui.waiting import wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]

MARKUP_TITLES = ["[/foo] hi", "[red]x", "[@click=app.quit]x[/]"]
ESC = "\x1b"


def make_app(store):
    from llamadesk.app.tui.app import LlamadeskApp

    return LlamadeskApp(store=store, config=Config(), engine_loader=FakeLoader(), save_settings=False)


def drawn_lines(widget) -> list[str]:
    """What `widget` draws, a line of plain text per row."""
    return [widget.render_line(y).text.rstrip() for y in range(widget.size.height)]


def drawn_toasts(app) -> list[str]:
    """The notifications' text as the screen draws it (markup read where a notification asks for it)."""
    return [Content.from_markup(n.message).plain if n.markup else n.message for n in app._notifications]


async def test_titles_are_drawn_as_written_in_the_list_the_dialog_and_the_toast(store):
    settings = Config().conversation_settings()
    for title in MARKUP_TITLES:  # stored earlier: the list draws them as the app opens
        store.new_conversation(title, settings)
    app = make_app(store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        options = screen.query_one("#conversations", OptionList)
        await wait_until(pilot, lambda: options.option_count == 4, what="the list")
        lines = drawn_lines(options)
        assert lines[1:4] == list(reversed(MARKUP_TITLES))  # most recent first
        # A prompt with markup becomes a title like any other.
        await ask(pilot, "[b]bold?[/b] [/x]")
        await wait_until(pilot, lambda: options.option_count == 5, what="the new title")
        assert drawn_lines(options)[1] == "[b]bold?[/b] [/x]"

        screen.open_conversation(store.conversations()[-1].id)  # "[/foo] hi"
        await pilot.press("f8")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
        assert str(app.screen.query_one(Label).render()) == "Delete “[/foo] hi” and all its messages?"
        await pilot.press("y")
        await wait_until(pilot, lambda: app.screen is screen and screen.conversation is None, what="the delete")
        assert "Deleted “[/foo] hi”" in drawn_toasts(app)
    assert app.crash is None


async def test_control_characters_in_titles_and_messages_are_shown_not_obeyed(store, monkeypatch):
    conversation = store.new_conversation(
        f"esc {ESC}[41mRED{ESC}[0m {ESC}]0;PWNED\x07 x", Config().conversation_settings()
    )
    stored = f"body {ESC}[42mGREEN{ESC}[0m {ESC}[2J cleared?"
    store.add_message(conversation.id, "user", stored)
    store.add_message(conversation.id, "assistant", "ok")
    # Every piece a streaming reply appends to its Markdown, to see that none carries an ESC.
    appended: list[str] = []
    original_append = MarkdownWidget.append

    def recording_append(self, markdown: str):
        appended.append(markdown)
        return original_append(self, markdown)

    monkeypatch.setattr(MarkdownWidget, "append", recording_append)
    app = make_app(store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        options = screen.query_one("#conversations", OptionList)
        await wait_until(pilot, lambda: options.option_count == 2, what="the list")
        assert ESC not in options.get_option_at_index(1).prompt
        lines = drawn_lines(options)
        assert lines[1] == "esc ^[[41mRED^[[0m" and ESC not in "".join(lines)  # the title wraps in the list
        screen.open_conversation(conversation.id)
        await wait_until(pilot, lambda: len(screen.query(MessageView)) == 2, what="the messages")
        first = screen.query(MessageView).first()
        await wait_until(pilot, lambda: first.markdown.source, what="the message drawn")
        assert first.markdown.source == "body ^[[42mGREEN^[[0m ^[[2J cleared?"
        assert first.content == stored  # copying it gives the text as it was
        # The fake model echoes the prompt: its reply streams the ESC back.
        await ask(pilot, f"say {ESC}[2J now")
        reply = screen.query(MessageView).last()
        assert screen.messages[-1].content == f"Echo: say {ESC}[2J now"
        assert appended and not any(ESC in piece for piece in appended)
        assert reply.markdown.source == "Echo: say ^[[2J now"


async def test_a_file_name_with_brackets_is_named_as_it_is(store, tmp_path):
    source = tmp_path / "report[draft].txt"
    source.write_text("The station is near.\n", encoding="utf-8")
    app = make_translating_app(store)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("f6")
        await wait_until(pilot, lambda: isinstance(app.screen, TranslateScreen), what="the translation screen")
        screen = app.screen
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, TextInputScreen), what="the file dialog")
        app.screen.query_one(Input).value = str(source)
        await pilot.press("enter")
        out = tmp_path / "report[draft].fr.txt"
        await wait_until(pilot, lambda: out.exists() and not screen.running, what="the translated file")
        toasts = drawn_toasts(app)
        assert "Translating report[draft].txt into report[draft].fr.txt" in toasts
        assert f"Saved {out}" in toasts


async def test_past_translations_are_listed_as_written(store):
    store.add_translation("en", "fr", "[/x] the [red]station", "[/x] la gare", "m")
    app = make_translating_app(store)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("f6")
        await wait_until(pilot, lambda: isinstance(app.screen, TranslateScreen), what="the translation screen")
        app.screen.query_one("#source", TextArea).focus()
        await pilot.press("f8")
        await wait_until(pilot, lambda: isinstance(app.screen, TranslationHistoryScreen), what="the history")
        await pilot.pause()
        [line] = [line for line in drawn_lines(app.screen.query_one(OptionList)) if line.strip()]
        assert line.strip() == "en→fr  [/x] the [red]station  ⇒  [/x] la gare"
    assert app.crash is None


async def test_text_panes_draw_control_characters_one_for_one_and_keep_the_text():
    """The translation panes showed a stored translation's OSC 0 and ESC [2J to the terminal
    (the window renamed, the screen wiped); each is drawn as a control picture in its place."""
    from textual.app import App

    from llamadesk.app.tui.widgets.plain_text_area import PlainTextArea
    from llamadesk.app.tui.widgets.review_text_area import ReviewTextArea

    text = "src \x1b]0;PWNED\x07 text \x1b[2J\tend"

    class Panes(App[None]):
        def compose(self):
            yield PlainTextArea(text, id="source")
            yield ReviewTextArea(text, id="target", read_only=True)

    async with Panes().run_test() as pilot:
        for pane in (pilot.app.query_one("#source", PlainTextArea), pilot.app.query_one("#target", ReviewTextArea)):
            drawn = pane.get_line(0).plain
            assert "\x1b" not in drawn and drawn.count("\u241b") == 2  # (Rich itself drops the BEL)
            assert drawn.startswith("src \u241b]0;PWNED") and drawn.endswith("\u241b[2J\tend")
            assert pane.text == text  # what is translated, copied or saved is unchanged
