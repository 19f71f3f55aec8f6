"""Deleting a conversation mid-reply leaves none of its prompt cache (its tokens and KV) on disk."""

from __future__ import annotations

import pytest

from llamadesk.app.chat.prompt_cache import PromptCache
from llamadesk.app.engine.sequence_state import SequenceSnapshot
from llamadesk.app.settings.user_config import Config
from llamadesk.app.tui.app import LlamadeskApp
from llamadesk.app.tui.screens.dialogs import ConfirmScreen
from tests.tui.chat_pilot import ask
from tests.tui.fake_engine import FakeEngine, FakeLoader
from tests.tui.waiting import wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]


class CachingFakeEngine(FakeEngine):
    """A fake engine whose KV cache the prompt cache saves (a few bytes stand for llama.cpp's state)."""

    def cached_prefix(self, tokens) -> int:
        return 0

    def save_sequence(self) -> SequenceSnapshot:
        return SequenceSnapshot(tokens=(1, 2, 3), state=memoryview(b"kv" * 64))

    def restore_sequence(self, tokens, state) -> bool:
        return False


class CachingLoader(FakeLoader):
    def __call__(self, spec, settings):
        engine = CachingFakeEngine(spec, settings.n_ctx or self.n_ctx, self.token_delay)
        self.engines.append(engine)
        return engine


async def test_deleting_a_conversation_while_its_reply_streams_leaves_no_cache_file(store, tmp_path):
    cache = PromptCache(tmp_path / "cache", 64 * 1024**2)
    app = LlamadeskApp(
        store=store,
        config=Config(),
        engine_loader=CachingLoader(token_delay=0.005),
        save_settings=False,
        prompt_cache=cache,
    )
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ask(pilot, "hello")  # a finished reply is cached...
        await wait_until(pilot, lambda: cache.flush(0) and list(cache.folder.glob("c1-*.kvc")), what="the cache")
        await ask(pilot, "a long one", wait=False)  # ...and one still streaming when the delete comes
        await wait_until(pilot, lambda: "word3" in (screen.reply.text if screen.reply else ""), what="tokens")
        await pilot.press("f8")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.conversation is None, what="the delete")
        await wait_until(pilot, lambda: not app.host.replying, what="the stopped reply to end")
        # The stopped reply's cache write, had it outlived the delete, is on disk by now.
        await pilot.pause(0.5)
        assert cache.flush(5)
        await wait_until(pilot, lambda: not list(cache.folder.glob("c1-*")), timeout=5, what="no cache file")
