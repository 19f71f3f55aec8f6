"""The chat screen's keys act in the order they were typed, in a burst as one at a time.

A terminal delivers keys typed fast (or while the UI is busy) together, all queued before the first
is handled. An ordinary screen binding runs only once its key has bubbled up from the prompt box,
while the box goes on with the keys after it: text typed right after ctrl+l went into the box and
was then replaced by the last prompt; typed after F2, F3, F8 or ctrl+g it went into the prompt box,
not into the dialog (a new title typed after F2, with Enter, was sent as a prompt). A priority
binding runs as its key comes, so it must also wait for the keys typed before it: run at once,
ctrl+l took the last prompt back before an Enter typed before it was handled, and that Enter sent
the last prompt joined to what had been typed."""

from __future__ import annotations

import pytest

from llamadesk.app.settings.user_config import Config
from llamadesk.app.tui.app import LlamadeskApp
from llamadesk.app.tui.screens.chat import ChatScreen
from llamadesk.app.tui.screens.dialogs import ConfirmScreen, TextInputScreen
from llamadesk.app.tui.screens.model_picker import ModelPickerScreen
from llamadesk.app.tui.screens.settings import SettingsScreen
from llamadesk.app.tui.widgets.prompt_box import PromptBox
from tests.tui.chat_pilot import ask, texts, typed_at_once
from tests.tui.fake_engine import FakeLoader
from tests.tui.waiting import wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]

FIRST_TURN = [("user", "hello", "complete"), ("assistant", "Echo: hello", "complete")]


def make_app(store, loader: FakeLoader) -> LlamadeskApp:
    return LlamadeskApp(store=store, config=Config(), engine_loader=loader, save_settings=False)


def prompts_sent(loader: FakeLoader) -> list[str]:
    """The last message of every prompt the model was given, in order."""
    return [prompt[-1]["content"] for engine in loader.engines for prompt in engine.prompts]


def box_text(screen: ChatScreen) -> str:
    return screen.query_one(PromptBox).text


async def test_text_typed_right_after_ctrl_l_goes_into_the_prompt_taken_back(store):
    app = make_app(store, FakeLoader())
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "hello")
        typed_at_once(app, "ctrl+l", "space", *"there")
        await wait_until(pilot, lambda: box_text(screen) == "hello there", what="the text after the prompt")
        assert screen.messages == [] and store.messages(screen.conversation.id) == []


async def test_a_prompt_typed_right_after_ctrl_r_comes_after_the_new_reply(store):
    loader = FakeLoader()
    app = make_app(store, loader)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "hello")
        typed_at_once(app, "ctrl+r", *"next", "enter")
        # Enter comes while the new reply streams (kept in the box, said) or once it has ended (sent).
        await wait_until(
            pilot,
            lambda: screen.reply is None and (box_text(screen) == "next" or len(screen.messages) == 4),
            what="the new reply, then the prompt",
        )
        assert prompts_sent(loader)[:2] == ["hello", "hello"]
        assert texts(screen)[:2] == FIRST_TURN


async def test_a_title_typed_right_after_f2_goes_into_the_rename_dialog(store):
    loader = FakeLoader()
    app = make_app(store, loader)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "hello")
        typed_at_once(app, "f2", *"Greetings", "enter")
        await wait_until(pilot, lambda: screen.conversation.title == "Greetings", what="the rename")
        assert isinstance(app.screen, ChatScreen)
        assert prompts_sent(loader) == ["hello"] and texts(screen) == FIRST_TURN and box_text(screen) == ""


async def test_y_typed_right_after_f8_answers_the_delete_dialog(store):
    app = make_app(store, FakeLoader())
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "hello")
        typed_at_once(app, "f8", "y")
        await wait_until(pilot, lambda: store.conversations() == [], what="the delete")
        assert isinstance(app.screen, ChatScreen) and screen.conversation is None and box_text(screen) == ""


@pytest.mark.parametrize(("key", "dialog"), [("f3", SettingsScreen), ("ctrl+g", ModelPickerScreen)])
async def test_keys_typed_right_after_a_dialog_s_key_go_to_the_dialog(store, key, dialog):
    app = make_app(store, FakeLoader())
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ask(pilot, "hello")
        typed_at_once(app, key, *"xyz")
        await wait_until(pilot, lambda: isinstance(app.screen, dialog), what="the dialog")
        await pilot.press("escape")  # behind the burst: once it is handled, the dialog closes
        await wait_until(pilot, lambda: app.screen is screen, what="the dialog to close")
        assert box_text(screen) == ""


# Keys typed before a bound key: its action sees what they did.


async def test_ctrl_l_right_after_a_prompt_is_sent_takes_nothing_back_into_it(store):
    loader = FakeLoader()
    app = make_app(store, loader)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "hello")
        typed_at_once(app, *"ab", "enter", "ctrl+l")
        await wait_until(pilot, lambda: "ab" in prompts_sent(loader) and screen.reply is None, what="the reply")
        # ctrl+l came while "ab" was replied to (nothing taken back) or once it was (it comes back).
        assert prompts_sent(loader) == ["hello", "ab"]
        assert texts(screen)[:2] == FIRST_TURN
        assert box_text(screen) in ("", "ab")


async def test_text_typed_before_ctrl_l_is_replaced_by_the_last_prompt(store):
    app = make_app(store, FakeLoader())
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "hello")
        typed_at_once(app, *"ab", "ctrl+l")
        await wait_until(pilot, lambda: screen.messages == [], what="the last turn to be taken back")
        await pilot.pause(0.1)
        assert box_text(screen) == "hello"


async def test_f2_right_after_the_first_prompt_renames_the_conversation_it_started(store):
    loader = FakeLoader()
    app = make_app(store, loader)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        typed_at_once(app, *"hi", "enter", "f2", *"Greetings", "enter")
        await wait_until(
            pilot, lambda: screen.conversation is not None and screen.conversation.title == "Greetings", what="rename"
        )
        assert prompts_sent(loader) == ["hi"]


# The chat screen's priority keys are its own only while it is the screen on top.


@pytest.mark.parametrize("key", ["ctrl+r", "ctrl+l", "f2", "f3", "f8", "ctrl+g", "ctrl+n"])
async def test_a_chat_key_typed_in_a_dialog_does_nothing_there(store, key):
    loader = FakeLoader()
    app = make_app(store, loader)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "hello")
        await pilot.press("f2")
        rename = app.screen
        assert isinstance(rename, TextInputScreen)
        await pilot.press(key, *"x")
        assert app.screen is rename and not isinstance(app.screen, ConfirmScreen)
        assert rename.query_one("#answer").value == "x"  # the title was selected: x replaced it
        assert texts(screen) == FIRST_TURN and prompts_sent(loader) == ["hello"]
        assert screen.conversation.title == "hello"
