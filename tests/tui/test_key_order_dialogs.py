"""Keys typed in one burst after the key that closes a dialog go where they would if typed slowly.

F2, F3, F8 and ctrl+g open their dialogs before the keys typed after them are handled (see
test_key_order_chat.py); the key that closes the dialog (Esc, n, y) was an ordinary binding, so the
keys after it went to the dialog's own widgets, which were then closed with it: lost. The closing
keys are priority bindings now: the dialog is gone before the next key is looked at."""

from __future__ import annotations

import pytest

from llamadesk.app.settings.user_config import Config
from llamadesk.app.tui.app import LlamadeskApp
from llamadesk.app.tui.widgets.prompt_box import PromptBox
from tests.tui.chat_pilot import ask, typed_at_once
from tests.tui.fake_engine import FakeLoader
from tests.tui.waiting import wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]


def make_app(store) -> LlamadeskApp:
    return LlamadeskApp(store=store, config=Config(), engine_loader=FakeLoader(), save_settings=False)


@pytest.mark.parametrize(
    "closing",
    [("f8", "n"), ("f8", "escape"), ("f2", "escape"), ("f3", "escape"), ("ctrl+g", "escape")],
    ids=["f8-n", "f8-esc", "f2-esc", "f3-esc", "ctrl+g-esc"],
)
async def test_text_typed_after_a_dialog_is_closed_goes_into_the_prompt_box(store, closing):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "hello")
        typed_at_once(app, *closing, "a", "b")
        box = screen.query_one(PromptBox)
        await wait_until(pilot, lambda: app.screen is screen and box.text == "ab", what="the text in the prompt box")


async def test_a_delete_declined_then_confirmed_in_one_burst_deletes(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "hello")
        typed_at_once(app, "f8", "n", "f8", "y")
        await wait_until(pilot, lambda: store.conversations() == [], what="the conversation deleted")
        assert app.screen is screen
