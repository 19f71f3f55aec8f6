"""The app end to end with the real smollm2 starter through llama.cpp (no fakes)."""

from __future__ import annotations

import pytest

from llamadesk.app.chat.store import Store
from llamadesk.app.engine.types import LoadSettings
from llamadesk.app.settings.user_config import Config
from llamadesk.app.tui.app import LlamadeskApp
from llamadesk.app.tui.widgets.prompt_box import PromptBox
from llamadesk.app.tui.widgets.status_bar import StatusBar
from tests.conftest import PINNED_LOAD
from tests.tui.waiting import wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.slow, pytest.mark.timeout(300)]


async def test_smollm2_answers_paris_streams_stops_and_closes(tmp_path):
    store = Store(tmp_path / "real.sqlite3")
    # Pinned (PINNED_LOAD): one thread, as on a shared, busy CPU llama.cpp's thread barriers make two
    # threads slower than one, and the rest fixed so the answer is the same on every machine.
    config = Config(temperature=0.0, context_length=2048, max_tokens=200)
    app = LlamadeskApp(store=store, config=config, save_settings=False, load_defaults=LoadSettings(**PINNED_LOAD))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        await wait_until(pilot, lambda: screen.facts.backend is not None, timeout=120, what="smollm2 to load")
        box = screen.query_one(PromptBox)
        box.text = "What is the capital of France?"
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: len(screen.messages) == 2 and screen.reply is None, timeout=120, what="the answer"
        )
        answer = screen.messages[-1]
        assert "Paris" in answer.content and answer.state == "complete"
        assert store.messages(screen.conversation.id)[-1].content == answer.content
        status = str(screen.query_one(StatusBar).render())
        assert "tok/s" in status and "/2048" in status and "CPU" in status
        # A long reply, stopped with Esc mid-stream, keeps what came.
        box.text = "Write a very long story about a dragon who learns to cook."
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: screen.reply is not None and len(screen.reply.text) > 20, timeout=120, what="streaming"
        )
        await pilot.press("escape")
        await wait_until(pilot, lambda: screen.messages[-1].state == "interrupted", what="the stop")
        assert len(screen.messages[-1].content) > 20
        engine = app.host._engine
        assert engine is not None
        await pilot.press("ctrl+q")
    assert engine._closed  # quitting closed the model: its memory went back
    store.close()
