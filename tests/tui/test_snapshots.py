"""Snapshots of the main screens at 80x24 and 120x40 (pytest-textual-snapshot).

Update after an intended change with `pytest tests/tui/test_snapshots.py --snapshot-update`,
then look at the report before committing the new SVGs.
"""

from __future__ import annotations

import pytest

from llamadesk.app.chat.store import Store
from llamadesk.app.settings.user_config import Config
from llamadesk.app.tui.app import LlamadeskApp
from llamadesk.app.tui.widgets.prompt_box import PromptBox
from tests.tui.fake_engine import FakeLoader
from tests.tui.waiting import wait_until

SIZES = [(80, 24), (120, 40)]
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def starters_only_library(tmp_path, monkeypatch, gemma_path):
    """A home whose library holds just the starter models, whatever other tests added to theirs."""
    home = tmp_path / "home"
    (home / "data" / "models").mkdir(parents=True)
    # The assembled starter Gemma is shared, not rebuilt (it takes a second and 250 MB).
    (home / "data" / "models" / gemma_path.name).symlink_to(gemma_path)
    monkeypatch.setenv("LLAMADESK_HOME", str(home))


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


async def library_listed(pilot) -> None:
    table = pilot.app.screen.query_one("#models")
    await wait_until(pilot, lambda: table.row_count >= 2, timeout=30, what="the library")
    # DataTable sizes its columns to new rows on idle, a frame or more later; on a slow run the
    # snapshot caught the header at its old widths. Textual has no public signal for it.
    await wait_until(pilot, lambda: not table._require_update_dimensions, timeout=30, what="the column widths")
    # Under load a frame can paint the header between the rows' arrival and that update, and
    # DataTable's line cache keeps that header (its key has no column widths) until something else
    # changes: the snapshot of a 2-core machine at full load caught it at the old widths.
    table._clear_caches()
    table.refresh()
    await pilot.pause()


async def nothing_more(pilot) -> None:
    pass


# Screen opened over the chat: the key that opens it, and what to wait for before the snapshot.
DIALOGS = {"settings": ("f3", nothing_more), "help": ("f1", nothing_more), "model_picker": ("ctrl+g", library_listed)}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("dialog", DIALOGS)
def test_dialog_over_the_chat(snap_compare, tmp_path, dialog, size):
    key, ready = DIALOGS[dialog]

    async def open_dialog(pilot):
        await with_a_conversation(pilot)
        await pilot.press(key)
        await ready(pilot)
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=open_dialog)
