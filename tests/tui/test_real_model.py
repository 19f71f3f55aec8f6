"""The app end to end with the real smollm2 starter through llama.cpp (no fakes)."""

from __future__ import annotations

import pytest

from llamadesk.app.chat.prompt_cache import HEADER
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


async def test_a_reopened_conversation_answers_from_the_prompt_cache_on_disk(tmp_path, smollm2_path):
    """Started on the command line, reopened in a freshly started app: the status line shows the
    prompt tokens that came from the cache file instead of being decoded again."""
    from llamadesk.app.chat.prompt_cache import PromptCache
    from tests.conftest import PINNED_FLAGS, PINNED_SAMPLING_FLAGS, run_cli

    home = tmp_path / "home"
    started = run_cli(
        "chat", "-m", str(smollm2_path), *PINNED_FLAGS, *PINNED_SAMPLING_FLAGS, "--max-tokens", "24", "--save",
        "Describe the history of Paris in two sentences.",
        env={"LLAMADESK_HOME": str(home)},
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    cache_folder = home / "data" / "prompt-cache"
    assert len(list(cache_folder.glob("*.kvc"))) == 1
    store = Store(home / "data" / "conversations.sqlite3")
    cache = PromptCache(cache_folder, budget=10**9)
    app = LlamadeskApp(
        store=store, config=Config(), save_settings=False, load_defaults=LoadSettings(**PINNED_LOAD), prompt_cache=cache
    )
    async with app.run_test(size=(120, 30)) as pilot:
        screen = app.screen
        (conversation,) = store.conversations()
        screen.open_conversation(conversation.id)
        await wait_until(pilot, lambda: screen.facts.backend is not None, timeout=120, what="smollm2 to load")
        assert len(screen.messages) == 2
        box = screen.query_one(PromptBox)
        box.text = "Now describe Lyon in one sentence."
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: len(screen.messages) == 4 and screen.reply is None, timeout=120, what="the answer"
        )
        assert screen.messages[-1].state == "complete" and screen.messages[-1].content
        status = str(screen.query_one(StatusBar).render())
        restored = cache.restored_tokens
        assert restored > 40  # the system prompt, the question and the first reply
        assert f"{screen.facts.cached_tokens} cached from disk" in status and screen.facts.cached_tokens >= restored
        await pilot.press("ctrl+q")
    # Quitting waited for the new file: the conversation's cache now holds this reply too.
    (path,) = cache_folder.glob("*.kvc")
    assert path.stat().st_size > HEADER.size + 4 * restored
    store.close()
