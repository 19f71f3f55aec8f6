"""A damaged library.json is the user's file to fix: the pickers and the manager say so, the app stays up."""

from __future__ import annotations

import pytest
from textual.widgets import Label, Static

from llamadesk.app.chat.store import Store
from llamadesk.app.core.paths import HOME_ENV
from llamadesk.app.settings.user_config import Config
from llamadesk.app.tui.app import LlamadeskApp
from llamadesk.app.tui.screens.adapter_picker import AdapterPickerScreen
from llamadesk.app.tui.screens.model_picker import ModelPickerScreen
from llamadesk.app.tui.screens.models import ModelsScreen
from tests.tui.fake_engine import FakeLoader
from tests.tui.waiting import wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]


@pytest.fixture
def damaged_home(tmp_path, monkeypatch):
    """A home whose library record was cut off mid-write."""
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    (home / "data" / "library.json").write_text('{"version": 1, "folders": [')
    monkeypatch.setenv(HOME_ENV, str(home))
    return home


def rendered(widget) -> str:
    return str(widget.render())


@pytest.mark.parametrize(
    ("key", "screen_type", "note"),
    [("f10", AdapterPickerScreen, "#note"), ("ctrl+g", ModelPickerScreen, "#note"), ("f5", ModelsScreen, "#details")],
)
async def test_a_damaged_library_record_is_one_line_in_the_screen_not_the_end_of_the_app(
    tmp_path, damaged_home, key, screen_type, note
):
    store = Store(tmp_path / "conversations.sqlite3")
    app = LlamadeskApp(store=store, config=Config(), engine_loader=FakeLoader(), save_settings=False)
    try:
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.press(key)
            await wait_until(pilot, lambda: isinstance(app.screen, screen_type), what="the screen")
            shown = app.screen.query_one(note, Label if note == "#note" else Static)
            await wait_until(pilot, lambda: "library.json" in rendered(shown), timeout=30, what="the line")
            assert "not valid JSON" in rendered(shown)
            assert "fix or delete it" in rendered(shown)
            assert app.is_running
    finally:
        store.close()
    assert app.return_code in (0, None)
