"""A narrow terminal: bringing the conversation list up must not squeeze the chat to nothing."""

from __future__ import annotations

import pytest

from llamadesk.app.settings.user_config import Config
from llamadesk.app.tui.app import LlamadeskApp
from llamadesk.app.tui.widgets.prompt_box import PromptBox
from tests.tui.fake_engine import FakeLoader
from tests.tui.waiting import wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]


async def test_the_list_in_a_30_column_terminal_shows_instead_of_the_chat(store):
    app = LlamadeskApp(store=store, config=Config(), engine_loader=FakeLoader(), save_settings=False)
    async with app.run_test(size=(30, 12)) as pilot:
        sidebar = app.screen.query_one("#sidebar")
        await wait_until(pilot, lambda: not sidebar.display, what="the list to hide")
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert sidebar.display
        assert not app.screen.query_one("#chat").display
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.query_one("#chat").display
        assert app.screen.query_one(PromptBox).has_focus
    assert app.return_code in (0, None)


async def test_choosing_a_conversation_in_a_narrow_terminal_goes_back_to_the_chat(store):
    conversation = store.new_conversation("dragon talk", Config().conversation_settings())
    app = LlamadeskApp(store=store, config=Config(), engine_loader=FakeLoader(), save_settings=False)
    async with app.run_test(size=(30, 12)) as pilot:
        screen = app.screen
        await pilot.press("f4")
        await pilot.pause()
        assert screen.query_one("#sidebar").display and not screen.query_one("#chat").display
        assert screen.query_one("#search").has_focus  # not the hidden prompt
        await pilot.press(*"dragon", "enter")
        await wait_until(pilot, lambda: screen.conversation is not None, what="the conversation to open")
        assert screen.conversation.id == conversation.id
        assert screen.query_one("#chat").display and not screen.query_one("#sidebar").display
        assert screen.query_one(PromptBox).has_focus


async def test_shrinking_the_terminal_with_the_list_shown_keeps_the_app_up(store):
    app = LlamadeskApp(store=store, config=Config(), engine_loader=FakeLoader(), save_settings=False)
    async with app.run_test(size=(100, 24)) as pilot:
        screen = app.screen
        await pilot.press("ctrl+f")
        await pilot.resize_terminal(30, 8)
        await pilot.pause()
        assert screen.query_one("#sidebar").display and not screen.query_one("#chat").display
        await pilot.press("escape")
        await pilot.resize_terminal(100, 24)
        await pilot.pause()
        assert screen.query_one(PromptBox).has_focus
        # The list was asked for on the wide terminal and the user went back to the prompt on a
        # narrow one: the wide terminal shows both again, the prompt keeps the focus.
        await pilot.press("ctrl+f", "escape")
        await pilot.resize_terminal(30, 8)
        await pilot.pause()
        assert screen.query_one("#chat").display and screen.query_one(PromptBox).has_focus
    assert app.return_code in (0, None)


@pytest.mark.parametrize("width", [2, 4])
async def test_a_terminal_a_few_columns_wide_draws_an_empty_prompt_without_crashing(store, width):
    app = LlamadeskApp(store=store, config=Config(), engine_loader=FakeLoader(), save_settings=False)
    async with app.run_test(size=(width, 8)) as pilot:
        await pilot.pause()
        await pilot.press("h", "i")
        await pilot.pause()
        assert app.screen.query_one(PromptBox).text == "hi"
    assert app.return_code in (0, None)
