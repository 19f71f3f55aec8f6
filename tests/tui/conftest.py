"""Fixtures for the terminal UI tests."""

from __future__ import annotations

import pytest

from tests.tui.tmux_terminal import Terminal, pinned_home


@pytest.fixture
def tmux_home(tmp_path):
    """A home for llamadesk in a tmux terminal, with greedy replies and pinned loading."""
    return pinned_home(tmp_path)


@pytest.fixture
def terminals():
    """Terminals opened by a test (tmux_terminal.new_terminal), closed when it ends."""
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


@pytest.fixture
def store(tmp_path):
    """The app's conversation store in the test's own folder (a module may define its own)."""
    from llamadesk.app.chat.store import Store

    opened = Store(tmp_path / "conversations.sqlite3")
    yield opened
    opened.close()
