"""ctrl+n, then a prompt typed at once: the prompt goes into the new conversation and its reply runs
to its end.

Keys a terminal delivers together (a fast typist, a UI busy for a moment) are all queued before the
first is handled. A screen binding is only looked up once its key has bubbled from the focused
prompt box up to the app, a message pump at a time, while the prompt box goes on with the keys
after it: Enter's prompt was sent first, and ctrl+n's new conversation then stopped its reply."""

from __future__ import annotations

import pytest

from llamadesk.app.settings.user_config import Config
from llamadesk.app.tui.app import LlamadeskApp
from llamadesk.app.tui.widgets.prompt_box import PromptBox
from tests.tui.chat_pilot import ask, texts, typed_at_once
from tests.tui.fake_engine import FakeLoader
from tests.tui.waiting import wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]


def make_app(store) -> LlamadeskApp:
    return LlamadeskApp(store=store, config=Config(), engine_loader=FakeLoader(), save_settings=False)


def sent(store, prompt: str) -> bool:
    """`prompt` is stored, in whichever conversation."""
    return any(m.content == prompt for c in store.conversations() for m in store.messages(c.id))


async def test_a_prompt_typed_right_after_ctrl_n_goes_into_the_new_conversation_and_its_reply_ends(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "first question")
        first = screen.conversation.id
        typed_at_once(app, "ctrl+n", *"hi", "space", *"there", "enter")
        await wait_until(pilot, lambda: sent(store, "hi there") and screen.reply is None, what="the reply to end")
        assert texts(screen) == [("user", "hi there", "complete"), ("assistant", "Echo: hi there", "complete")]
        assert screen.conversation is not None and screen.conversation.title == "hi there"
        assert [m.content for m in store.messages(first)] == ["first question", "Echo: first question"]
        assert screen.query_one(PromptBox).text == ""


async def test_a_prompt_typed_right_after_ctrl_n_from_the_conversation_list_goes_into_the_prompt_box(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "first question")
        first = screen.conversation.id
        screen.query_one("#conversations").focus()
        await wait_until(pilot, lambda: screen.focused is screen.query_one("#conversations"), what="the list's focus")
        typed_at_once(app, "ctrl+n", *"hello", "enter")
        await wait_until(pilot, lambda: sent(store, "hello") and screen.reply is None, what="the reply to end")
        assert texts(screen) == [("user", "hello", "complete"), ("assistant", "Echo: hello", "complete")]
        assert [m.content for m in store.messages(first)] == ["first question", "Echo: first question"]
