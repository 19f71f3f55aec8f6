"""Driving the chat screen from a Pilot as a user would: ask, then read what the screen holds."""

from __future__ import annotations

from textual import events

from llamadesk.app.tui.screens.chat import ChatScreen
from llamadesk.app.tui.widgets.prompt_box import PromptBox
from tests.tui.waiting import wait_until


async def ask(pilot, text: str, wait: bool = True) -> ChatScreen:
    screen = pilot.app.screen
    box = screen.query_one(PromptBox)
    box.focus()
    box.text = text  # typing key by key is tested once (ctrl+j test); here it only costs time
    await pilot.press("enter")
    await wait_until(
        pilot,
        lambda: screen.reply is not None or (screen.messages and screen.messages[-1].role == "assistant"),
        what="the reply to start",
    )
    if wait:
        await wait_until(pilot, lambda: screen.reply is None, what="the reply to end")
    return screen


def texts(screen: ChatScreen) -> list[tuple[str, str, str]]:
    return [(m.role, m.content, m.state) for m in screen.messages]


def typed_at_once(app, *keys: str) -> None:
    """Queue `keys` as a terminal delivers a burst of them: all before the app handles the first
    (Pilot.press waits for each key to be handled, so it never shows the race)."""
    for key in keys:
        character = {"space": " ", "enter": "\r"}.get(key, key if len(key) == 1 else None)
        app.post_message(events.Key(key, character))
