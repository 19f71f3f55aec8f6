"""F2 (rename) takes one line of at most GIVEN_TITLE_LENGTH characters, as the user sees it: a
100,000-character paste made the conversation list and the status line unusable, and a pasted ESC
was stored and sent to the terminal."""

from __future__ import annotations

import pytest
from textual.widgets import Input, OptionList

from llamadesk.app.chat.stored_chat import GIVEN_TITLE_LENGTH, TITLE_LENGTH, given_title, title_from_prompt
from llamadesk.app.settings.user_config import Config
from llamadesk.app.tui.app import LlamadeskApp
from llamadesk.app.tui.screens.dialogs import TextInputScreen
from tests.tui.chat_pilot import ask
from tests.tui.dialog_pilot import note, paste
from tests.tui.fake_engine import FakeLoader
from tests.tui.waiting import wait_until

pytestmark = [pytest.mark.timeout(120)]


def make_app(store) -> LlamadeskApp:
    return LlamadeskApp(store=store, config=Config(), engine_loader=FakeLoader(), save_settings=False)


async def open_rename(pilot) -> Input:
    await pilot.press("f2")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, TextInputScreen), what="the rename dialog")
    return pilot.app.screen.query_one(Input)


def listed_titles(screen) -> list[str]:
    options = screen.query_one("#conversations", OptionList)
    return [str(options.get_option_at_index(i).prompt) for i in range(1, options.option_count)]


@pytest.mark.asyncio
async def test_a_huge_paste_into_f2_is_cut_to_the_most_a_title_holds_and_the_dialog_says_so(store):
    async with make_app(store).run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "hello")
        answer = await open_rename(pilot)
        await pilot.press("ctrl+u")
        assert note(pilot) == ""
        await paste(pilot, "x" * 100_000 + "\nand a second line")
        assert answer.value == "x" * GIVEN_TITLE_LENGTH
        assert f"first {GIVEN_TITLE_LENGTH} characters" in note(pilot) and "first line" in note(pilot)
        assert f"at most {GIVEN_TITLE_LENGTH} characters" in pilot.app.screen.question
        await pilot.press("enter")
        await wait_until(pilot, lambda: pilot.app.screen is screen, what="the dialog to close")
        assert [c.title for c in store.conversations()] == ["x" * GIVEN_TITLE_LENGTH]
        assert screen.sub_title == "x" * GIVEN_TITLE_LENGTH
        assert listed_titles(screen) == ["x" * GIVEN_TITLE_LENGTH]


@pytest.mark.asyncio
async def test_typing_past_the_most_a_title_holds_is_refused_and_said(store):
    async with make_app(store).run_test(size=(80, 24)) as pilot:
        await ask(pilot, "hello")
        answer = await open_rename(pilot)
        await pilot.press("ctrl+u")
        await paste(pilot, "y" * (GIVEN_TITLE_LENGTH - 1))
        assert note(pilot) == ""  # it fits: nothing to say
        await pilot.press("a", "b")
        assert answer.value == "y" * (GIVEN_TITLE_LENGTH - 1) + "a"
        assert f"first {GIVEN_TITLE_LENGTH} characters" in note(pilot)


@pytest.mark.asyncio
async def test_a_pasted_title_keeps_its_first_line_with_its_control_characters_shown(store):
    async with make_app(store).run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "hello")
        answer = await open_rename(pilot)
        await pilot.press("ctrl+u")
        await paste(pilot, "\n  \nPlans \x1b]0;owned\x07for May\r\nsecond line\nthird")
        # One character for one (the cursor stays where the user put it), none sent to the terminal.
        assert answer.value == "Plans \u241b]0;owned\u2407for May"
        assert answer.cursor_position == len(answer.value)
        assert "first line" in note(pilot)
        await pilot.press("enter")
        await wait_until(pilot, lambda: pilot.app.screen is screen, what="the dialog to close")
        (stored,) = store.conversations()
        assert stored.title == "Plans \u241b]0;owned\u2407for May"
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in stored.title)


@pytest.mark.asyncio
async def test_a_title_too_long_from_before_is_offered_cut_and_can_be_edited(store):
    async with make_app(store).run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "hello")
        store.rename(screen.conversation.id, "z" * 5000 + "\nmore")  # stored by an older llamadesk
        screen.conversation = store.conversation(screen.conversation.id)
        answer = await open_rename(pilot)
        assert answer.value == "z" * GIVEN_TITLE_LENGTH
        assert f"first {GIVEN_TITLE_LENGTH} characters" in note(pilot)
        # Input refuses any change that leaves its value over max_length: a longer value kept
        # could not even be shortened a character at a time.
        await pilot.press("end", "backspace", "!")
        assert answer.value == "z" * (GIVEN_TITLE_LENGTH - 1) + "!"
        await pilot.press("enter")
        await wait_until(pilot, lambda: pilot.app.screen is screen, what="the dialog to close")
        assert store.conversation(screen.conversation.id).title == "z" * (GIVEN_TITLE_LENGTH - 1) + "!"


@pytest.mark.asyncio
async def test_a_blank_title_keeps_the_old_one(store):
    async with make_app(store).run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "hello")
        await open_rename(pilot)
        await pilot.press("ctrl+u", "space", "space", "enter")
        await wait_until(pilot, lambda: pilot.app.screen is screen, what="the dialog to close")
        assert [c.title for c in store.conversations()] == ["hello"]


@pytest.mark.asyncio
@pytest.mark.parametrize("separator", ["\u2028", "\u2029"])
async def test_a_pasted_title_is_saved_as_the_dialog_shows_it(store, separator):
    """The dialog splits a paste at a terminal's line breaks only; the title saved was cut again at
    U+2028 and U+2029, which it had shown as part of the line."""
    async with make_app(store).run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "hello")
        answer = await open_rename(pilot)
        await pilot.press("ctrl+u")
        await paste(pilot, f"Title{separator}Two")
        shown = answer.value
        await pilot.press("enter")
        await wait_until(pilot, lambda: pilot.app.screen is screen, what="the dialog to close")
        assert shown == f"Title{separator}Two" and [c.title for c in store.conversations()] == [shown]


def test_a_given_title_is_made_as_a_prompt_s_title_with_more_room():
    assert given_title("  first line\x1b[2J  \nsecond") == "first line^[[2J"
    assert given_title("a" * GIVEN_TITLE_LENGTH) == "a" * GIVEN_TITLE_LENGTH
    assert given_title("a" * 100_000) == "a" * (GIVEN_TITLE_LENGTH - 1) + "…"
    assert given_title(" \n\t ") == ""
    assert title_from_prompt("a" * 100) == "a" * (TITLE_LENGTH - 1) + "…"
    assert title_from_prompt("  ") == "New conversation"
