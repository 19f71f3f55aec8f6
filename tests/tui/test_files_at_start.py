"""The app's own files when they are damaged or cannot be written, driven through Pilot: a corrupt
store is kept aside and a fresh one opened, a read-only one keeps the conversation in memory, a
broken config.json or load.json gives a notification and the defaults. And when the app itself
dies, `llamadesk` exits non-zero with one line."""

from __future__ import annotations

import json
import os
import random

import pytest

from llamadesk.app.chat.store import ConversationSettings, Store
from llamadesk.app.core.errors import BadInputError
from llamadesk.app.engine.types import LoadSettings
from llamadesk.app.settings.user_config import Config
from llamadesk.app.tui.app import LlamadeskApp, run_app
from tests.permissions import permissions_enforced
from tests.tui.chat_pilot import ask, texts
from tests.tui.fake_engine import FakeLoader
from tests.tui.waiting import wait_until

PAGE = 4096


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A llamadesk home of this test's own: the app finds its store and config there."""
    monkeypatch.setenv("LLAMADESK_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "data").mkdir(parents=True)
    (tmp_path / "home" / "config").mkdir(parents=True)
    return tmp_path / "home"


def store_with_history(path) -> None:
    store = Store(path)
    conversation = store.new_conversation("before", ConversationSettings())
    for n in range(200):  # enough rows for the tables to span many pages
        store.add_message(conversation.id, "user", f"message {n} " * 20)
    store.close()


def overwrite_pages(path, pages: list[int], seed: int = 13) -> None:
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    for page in pages:
        data[page * PAGE : (page + 1) * PAGE] = rng.randbytes(PAGE)
    path.write_bytes(bytes(data))


def notices(app: LlamadeskApp) -> list[str]:
    return [notification.message for notification in app._notifications]


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_store_with_corrupt_pages_is_kept_aside_and_a_fresh_one_opened(home):
    path = home / "data" / "conversations.sqlite3"
    store_with_history(path)
    overwrite_pages(path, [2, 3, 5])
    damaged = path.read_bytes()
    app = LlamadeskApp(config=Config(), engine_loader=FakeLoader(), save_settings=False)
    try:
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await wait_until(pilot, lambda: any("damaged" in line for line in notices(app)), what="the notice")
            screen = await ask(pilot, "hello")
            assert texts(screen) == [("user", "hello", "complete"), ("assistant", "Echo: hello", "complete")]
    finally:
        app.store.close()
    (aside,) = (home / "data").glob("conversations.damaged-*.sqlite3")
    assert aside.read_bytes() == damaged  # kept, byte for byte, never deleted
    (line,) = [line for line in notices(app) if "damaged" in line]
    assert str(path) in line and aside.name in line and "fresh one" in line
    fresh = Store(path)
    assert [c.title for c in fresh.conversations()] == ["hello"]  # the new conversation was saved
    fresh.close()


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_read_only_store_keeps_the_conversation_in_memory_and_says_it_is_not_saved(home):
    path = home / "data" / "conversations.sqlite3"
    store_with_history(path)
    before = path.read_bytes()
    os.chmod(path, 0o444)
    try:
        with permissions_enforced():  # root would write to it anyway
            store = Store(path, on_notice=lambda _line: None)
            app = LlamadeskApp(store=store, config=Config(), engine_loader=FakeLoader(), save_settings=False)
            async with app.run_test(size=(80, 24), notifications=True) as pilot:
                await wait_until(pilot, lambda: notices(app), what="the notice")
                screen = await ask(pilot, "hello")  # the first message: it used to crash the app and be lost
                assert texts(screen) == [("user", "hello", "complete"), ("assistant", "Echo: hello", "complete")]
                assert [c.title for c in store.conversations()] == ["hello", "before"]
            store.close()
    finally:
        os.chmod(path, 0o644)
    (line,) = notices(app)
    assert str(path) in line and "readonly" in line and "not being saved" in line
    assert path.read_bytes() == before


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_broken_config_and_load_json_give_a_notification_and_the_defaults(home, tmp_path):
    config = home / "config" / "config.json"
    config.write_text(json.dumps({"temperature": "hot", "theme": "nord"}))
    (home / "config" / "load.json").write_text(json.dumps({"threads": 100000}))
    store = Store(tmp_path / "c.sqlite3")
    app = LlamadeskApp(store=store, engine_loader=FakeLoader())  # config and load settings from the files
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_until(pilot, lambda: len(notices(app)) == 2, what="two notices")
        assert app.config == Config() and app.load_defaults == LoadSettings()
        app.theme = "gruvbox"  # a choice the app would remember, but not over the user's file
        await pilot.pause()
    store.close()
    config_line, load_line = notices(app)
    assert "config.json" in config_line and "temperature" in config_line and '"hot"' in config_line
    assert "load.json" in load_line and "threads" in load_line and "512" in load_line
    assert json.loads(config.read_text()) == {"temperature": "hot", "theme": "nord"}


class DyingApp(LlamadeskApp):
    """Fails as a bug would: an exception no handler catches."""

    def __init__(self, error: BaseException, **options) -> None:
        super().__init__(**options)
        self.error = error

    def on_mount(self) -> None:
        super().on_mount()
        raise self.error


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "error, code, line",
    [
        (RuntimeError("the widget tree\nfell over"), 1, "the app stopped on an unexpected error (RuntimeError: the"),
        (BadInputError("that model is not a GGUF"), 2, "that model is not a GGUF"),
    ],
)
def test_when_the_app_dies_llamadesk_exits_non_zero_with_one_line(home, tmp_path, capsys, error, code, line):
    store = Store(tmp_path / "c.sqlite3")
    app = DyingApp(error, store=store, config=Config(), engine_loader=FakeLoader(), save_settings=False)
    assert run_app(app, headless=True) == code
    store.close()
    lines = [text for text in capsys.readouterr().err.splitlines() if text.strip()]
    assert len(lines) == 1 and lines[0].startswith("llamadesk: ") and line in lines[0], lines
    if code == 1:
        log = home / "data" / "crash.log"
        assert f"details are in {log}" in lines[0]
        assert "RuntimeError" in log.read_text() and "on_mount" in log.read_text()


def test_the_line_stays_one_line_when_the_crash_log_cannot_be_written(home, tmp_path, capsys, monkeypatch):
    store = Store(tmp_path / "c.sqlite3")
    app = DyingApp(OSError("disk gone"), store=store, config=Config(), engine_loader=FakeLoader(), save_settings=False)
    (tmp_path / "not").write_text("a file where the home's parent should be")
    monkeypatch.setenv("LLAMADESK_HOME", str(tmp_path / "not" / "a" / "folder"))
    assert run_app(app, headless=True) == 1
    store.close()
    lines = [text for text in capsys.readouterr().err.splitlines() if text.strip()]
    assert len(lines) == 1 and "OSError: disk gone" in lines[0] and "details" not in lines[0]
