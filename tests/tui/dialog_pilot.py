"""Driving a one-line dialog (TextInputScreen) from a Pilot: paste into it, read its note."""

from __future__ import annotations

from textual import events
from textual.widgets import Label


async def paste(pilot, text: str) -> None:
    """As a terminal's bracketed paste reaches the app: to the focused widget."""
    pilot.app.post_message(events.Paste(text))
    await pilot.pause()


def note(pilot) -> str:
    """What the dialog says below the answer ("": nothing)."""
    shown = [label for label in pilot.app.screen.query("#note").results(Label) if label.display]
    return str(shown[0].render()) if shown else ""
