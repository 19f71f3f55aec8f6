"""Snapshots of the main screens at 80x24 and 120x40 (pytest-textual-snapshot).

Update after an intended change with `pytest tests/tui/test_snapshots.py --snapshot-update`,
then look at the report before committing the new SVGs.
"""

from __future__ import annotations

import pytest

from llamadesk.app.config import Config
from llamadesk.app.store import Store
from llamadesk.app.tui.app import LlamadeskApp
from llamadesk.app.tui.widgets.prompt_box import PromptBox

from .fake_engine import FakeLoader
from .waiting import wait_until

SIZES = [(80, 24), (120, 40)]
pytestmark = pytest.mark.timeout(120)


def make_app(tmp_path) -> LlamadeskApp:
    store = Store(tmp_path / "snap.sqlite3")
    earlier = store.new_conversation("Tea and haiku", Config().conversation_settings())
    store.add_message(earlier.id, "user", "Write a haiku about tea")
    store.add_message(earlier.id, "assistant", "Steam over the cup", "interrupted")
    return LlamadeskApp(store=store, config=Config(), engine_loader=FakeLoader(), save_settings=False)


async def with_a_conversation(pilot) -> None:
    screen = pilot.app.screen
    box = screen.query_one(PromptBox)
    box.cursor_blink = False
    await wait_until(pilot, lambda: screen.facts.backend is not None, what="the model to load")
    box.text = "show me code"
    await pilot.press("enter")
    await wait_until(pilot, lambda: len(screen.messages) == 2 and screen.reply is None, what="the reply")
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_chat_screen(snap_compare, tmp_path, size):
    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=with_a_conversation)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_settings_screen(snap_compare, tmp_path, size):
    async def open_settings(pilot):
        await with_a_conversation(pilot)
        await pilot.press("f3")
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=open_settings)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help_screen(snap_compare, tmp_path, size):
    async def open_help(pilot):
        await with_a_conversation(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=open_help)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_model_picker(snap_compare, tmp_path, size):
    async def open_picker(pilot):
        await with_a_conversation(pilot)
        await pilot.press("ctrl+g")
        table = pilot.app.screen.query_one("#models")
        await wait_until(pilot, lambda: table.row_count >= 2, timeout=30, what="the library")
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=open_picker)
