"""A conversation whose model cannot load: the form refuses an unknown name, the status line says
nothing is loaded, and a send that never reached a model leaves no empty reply behind."""

from __future__ import annotations

import pytest

from llamadesk.app.chat.prompt_cache import PromptCache
from llamadesk.app.core.errors import BadInputError
from llamadesk.app.engine.types import LoadSettings
from llamadesk.app.settings.user_config import Config
from llamadesk.app.tui.app import LlamadeskApp
from llamadesk.app.tui.screens.chat import ChatScreen
from llamadesk.app.tui.screens.settings import SettingsScreen
from llamadesk.app.tui.widgets.prompt_box import PromptBox
from llamadesk.app.tui.widgets.status_bar import StatusBar
from tests.tui.chat_pilot import ask, texts
from tests.tui.fake_engine import FakeLoader
from tests.tui.waiting import wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]


class LoaderWithABrokenModel(FakeLoader):
    """Loads fake engines, except "broken", which fails as an unknown model does."""

    def __call__(self, spec, settings):
        if spec == "broken":
            raise BadInputError("unknown model 'broken'; available: smollm2")
        return super().__call__(spec, settings)


def status(screen) -> str:
    return str(screen.query_one(StatusBar).render())


async def test_the_settings_form_refuses_a_model_the_library_does_not_have(store):
    app = LlamadeskApp(store=store, config=Config(), engine_loader=FakeLoader(), save_settings=False)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await ask(pilot, "hello")
        await pilot.press("f3")
        assert isinstance(app.screen, SettingsScreen)
        app.screen.query_one("#model").value = "4000000000"
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, SettingsScreen)
        error = str(app.screen.query_one("#error").render())
        assert "unknown model '4000000000'" in error and "smollm2" in error
        app.screen.query_one("#model").value = "gemma3-270m"  # a starter: known without a library record
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, ChatScreen)
        assert store.conversation(screen.conversation.id).settings.model == "gemma3-270m"


async def test_a_model_that_fails_to_load_is_named_not_loaded_and_a_send_leaves_no_empty_reply(store):
    loader = LoaderWithABrokenModel()
    config = Config(models={"chat": "broken"})
    app = LlamadeskApp(store=store, config=config, engine_loader=loader, save_settings=False)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: "broken (not loaded)" in status(screen), what="the failed load")
        box = screen.query_one(PromptBox)
        box.focus()
        box.text = "hi"
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.messages and screen.reply is None, what="the send to fail")
        await pilot.pause()
        assert texts(screen) == [("user", "hi", "complete")]
        assert [(m.role, m.content) for m in store.messages(screen.conversation.id)] == [("user", "hi")]
        assert not screen.query("MessageView.assistant")
        assert "broken (not loaded)" in status(screen)


async def test_a_model_that_loads_after_one_that_failed_is_named_again(store):
    loader = LoaderWithABrokenModel()
    app = LlamadeskApp(store=store, config=Config(), engine_loader=loader, save_settings=False)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ask(pilot, "hello")
        assert "smollm2" in status(screen)
        screen.host.load("broken", screen.load_settings, screen)  # as switching models does
        await wait_until(pilot, lambda: "broken (not loaded)" in status(screen), what="the failed load")
        assert "smollm2" not in status(screen)
        screen.host.load("smollm2", screen.load_settings, screen)
        await wait_until(pilot, lambda: "(not loaded)" not in status(screen) and "smollm2" in status(screen))


async def test_a_context_too_large_for_memory_is_advised_as_the_f3_setting(store, tmp_path):
    # The real loader: the plan refuses the context before any weights are read.
    config = Config(context_length=4_000_000_000)
    app = LlamadeskApp(
        store=store,
        config=config,
        save_settings=False,
        load_defaults=LoadSettings(n_threads=1),
        prompt_cache=PromptCache(tmp_path / "cache", 0),
    )
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: "(not loaded)" in status(screen), timeout=60, what="the refused load")
        await wait_until(pilot, lambda: any("KV cache" in str(n.message) for n in app._notifications))
        line = next(str(n.message) for n in app._notifications if "KV cache" in str(n.message))
        assert "set the context length (F3) to " in line and "--ctx" not in line


async def test_another_conversation_does_not_show_the_last_ones_speed_or_stop(store):
    app = LlamadeskApp(store=store, config=Config(), engine_loader=FakeLoader(token_delay=0.002), save_settings=False)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ask(pilot, "hello")
        await wait_until(pilot, lambda: "tok/s" in status(screen), what="the reply's speed")
        await ask(pilot, "a long one", wait=False)
        await wait_until(pilot, lambda: "word3" in (screen.reply.text if screen.reply else ""), what="tokens")
        await pilot.press("escape")
        await wait_until(pilot, lambda: "stopped" in status(screen), what="the stop")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert "tok/s" not in status(screen) and "TTFT" not in status(screen) and "stopped" not in status(screen)
