"""Drives the model manager's pull through Pilot in its own process (see test_models_screen.py).

Run as `python -m tests.tui.models_pull_driver SPEC [SPEC...]` with HF_ENDPOINT and friends set;
each SPEC is pulled in turn (a SPEC starting with "cancel:" is cancelled at its second downloaded
chunk: huggingface-hub reports a chunk before writing it, so the first one is then on disk).
Prints one JSON object per SPEC: the progress reports seen, the job line, the library.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from llamadesk.app.chat.store import Store
from llamadesk.app.settings.user_config import Config
from llamadesk.app.tui.app import LlamadeskApp
from llamadesk.app.tui.screens.dialogs import TextInputScreen
from llamadesk.app.tui.screens.models import ModelsScreen
from tests.tui.fake_engine import FakeLoader
from tests.tui.waiting import wait_until


async def pull_each(specs: list[str]) -> list[dict]:
    with tempfile.TemporaryDirectory() as scratch:
        return await _pull_each(Store(Path(scratch) / "conversations.sqlite3"), specs)


async def _pull_each(store: Store, specs: list[str]) -> list[dict]:
    app = LlamadeskApp(store=store, config=Config(), engine_loader=FakeLoader(), save_settings=False)
    results = []
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        await wait_until(pilot, lambda: isinstance(app.screen, ModelsScreen), what="the models screen")
        screen = app.screen
        await wait_until(pilot, lambda: len(screen.entries) >= 2, timeout=30, what="the library")
        original = screen._report
        for spec in specs:
            cancel = spec.startswith("cancel:")
            spec = spec.removeprefix("cancel:")
            seen: list[list] = []

            def record(progress, cancel=cancel, seen=seen) -> None:  # in the job's thread, like the original
                seen.append([progress.stage, progress.done, progress.total])
                chunks = [p for p in seen if p[0].startswith("downloading") and p[1] > 0]
                if cancel and len(chunks) == 2:
                    app.call_from_thread(screen.action_cancel_job)
                original(progress)

            screen._report = record
            await pilot.press("p")
            await wait_until(pilot, lambda: isinstance(app.screen, TextInputScreen), what="the repo question")
            app.screen.query_one("#answer").value = spec
            await pilot.press("enter")
            await wait_until(pilot, lambda: screen.job is None, timeout=60, what="the pull")
            await wait_until(
                pilot,
                lambda: not any(w.group == "library" and w.is_running for w in app.workers),
                what="the library to be reread",
            )
            await pilot.pause()
            results.append(
                {
                    "progress": seen,
                    "line": str(screen.query_one("#job-line").render()),
                    "failed": screen.query_one("#job-line").has_class("failed"),
                    "bar_shown": screen.query_one("#job-progress").display,
                    "library": {e.name: e.source for e in screen.entries},
                    "selected": screen.selected.name if screen.selected else None,
                }
            )
    return results


if __name__ == "__main__":
    for result in asyncio.run(pull_each(sys.argv[1:])):
        print(json.dumps(result))
