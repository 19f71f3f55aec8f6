"""A conversation picks LoRA adapters from the library (Pilot, fake engine, real adapter GGUFs and store)."""

from __future__ import annotations

import pytest

from llamadesk.app.chat.store import Store
from llamadesk.app.core.paths import models_dir
from llamadesk.app.settings.user_config import Config
from llamadesk.app.tui.app import LlamadeskApp
from llamadesk.app.tui.screens.adapter_picker import AdapterPickerScreen
from llamadesk.app.tui.widgets.status_bar import StatusBar
from llamadesk.convert.lora import plan_adapter, write_adapter
from tests.fixtures import lora_adapters
from tests.tui.chat_pilot import ask
from tests.tui.fake_engine import FakeLoader
from tests.tui.waiting import wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]


@pytest.fixture
def adapter_in_library(llamadesk_home):
    """A real GGUF adapter in the library's models folder (it is listed as an adapter, not a model)."""
    target = models_dir() / "tiny-lora.gguf"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_adapter(plan_adapter(lora_adapters.make_adapter("plain"), None, "f16"), target, force=True)
    yield target
    target.unlink(missing_ok=True)


async def _open_picker(pilot):
    """F10, then the picker's list once the library has been read into it."""
    await pilot.press("f10")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, AdapterPickerScreen), what="the picker")
    options = pilot.app.screen.query_one("#adapters")
    await wait_until(pilot, lambda: options.option_count >= 1, timeout=30, what="the library to be read")
    return options


async def test_picking_an_adapter_reloads_with_it_shows_it_and_keeps_it(tmp_path, adapter_in_library):
    store = Store(tmp_path / "conversations.sqlite3")
    loader = FakeLoader()
    app = LlamadeskApp(store=store, config=Config(), engine_loader=loader, save_settings=False)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await ask(pilot, "hello")
            options = await _open_picker(pilot)
            labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
            index = next(i for i, label in enumerate(labels) if label.startswith("tiny-lora"))
            assert "for tiny_llama" in labels[index]
            options.highlighted = index
            await pilot.press("space", "a")
            chosen = ((str(adapter_in_library), 1.0),)
            await wait_until(pilot, lambda: loader.settings[-1].lora == chosen, what="the reload with the adapter")
            await wait_until(pilot, lambda: "+ tiny-lora" in str(screen.query_one(StatusBar).render()))
            assert store.conversation(screen.conversation.id).settings.adapters == chosen
            # Unticking goes back to the model alone.
            options = await _open_picker(pilot)
            options.highlighted = index
            await pilot.press("space", "a")
            await wait_until(pilot, lambda: loader.settings[-1].lora == (), what="the reload without it")
            await wait_until(pilot, lambda: "+ tiny-lora" not in str(screen.query_one(StatusBar).render()))
            assert store.conversation(screen.conversation.id).settings.adapters == ()
    finally:
        store.close()


async def test_the_first_space_ticks_the_first_row(tmp_path, adapter_in_library):
    """The picker opened with no row highlighted: F10, Space, A closed it with nothing chosen."""
    store = Store(tmp_path / "conversations.sqlite3")
    loader = FakeLoader()
    app = LlamadeskApp(store=store, config=Config(), engine_loader=loader, save_settings=False)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await ask(pilot, "hello")
            options = await _open_picker(pilot)
            first = options.get_option_at_index(0).value
            await pilot.press("space", "a")
            await wait_until(pilot, lambda: loader.settings[-1].lora == ((first, 1.0),), what="the reload with it")
    finally:
        store.close()
