"""Snapshots of the translation screen at 80x24 and 120x40 (pytest-textual-snapshot).

Update after an intended change with `pytest tests/tui/test_translate_snapshots.py --snapshot-update`,
then look at the report before committing the new SVGs.
"""

from __future__ import annotations

import pytest
from textual.widgets import Select, TextArea

from llamadesk.app.chat.store import Store
from tests.tui.fake_translator import FRENCH, make_app
from tests.tui.waiting import wait_until

SIZES = [(80, 24), (120, 40)]
pytestmark = pytest.mark.timeout(120)
TEXT = "Where is the station?\n\nThe train leaves at noon, so please hurry."


async def with_a_translation(pilot, text: str = TEXT) -> None:
    await pilot.press("f6")
    screen = pilot.app.screen
    for area in screen.query(TextArea):
        area.cursor_blink = False
    screen.query_one("#source-language", Select).value = "en"
    screen.query_one("#source", TextArea).text = text
    await pilot.press("ctrl+r")
    await wait_until(pilot, lambda: not screen.running and screen.translation, timeout=60, what="the translation")
    status = screen.query_one("#status")
    # The status ends with the time taken ("done in 0.0 s"), which a busy machine changes: fix it.
    status.update(str(status.render()).split(": done in")[0] + ": done in 0.0 s")
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_translate_screen(snap_compare, tmp_path, size):
    app = make_app(Store(tmp_path / "snap.sqlite3"))
    assert snap_compare(app, terminal_size=size, run_before=with_a_translation)


def test_a_low_confidence_segment_is_highlighted(snap_compare, tmp_path):
    # The fake model is unsure of a sentence with "perhaps" (tests/tui/test_translate_screen.py).
    async def run_before(pilot) -> None:
        await with_a_translation(pilot, "Where is the station?\n\nPerhaps the train leaves at noon.")

    app = make_app(Store(tmp_path / "snap.sqlite3"), replies=FRENCH)
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
