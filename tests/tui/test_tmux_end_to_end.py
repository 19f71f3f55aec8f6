"""The installed `llamadesk` in a real terminal (tmux), with the real smollm2 starter model.

Ask, read Paris, stop a long reply with Esc, quit with ctrl+q, start again and find the
conversation; and kill -9 mid-reply: everything said before survives, the partial reply is
marked interrupted, and SQLite's integrity check passes.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from llamadesk.app.chat.prompt_cache import CACHE_FOLDER
from llamadesk.app.chat.store import STORE_FILE, Store
from tests.tui.tmux_terminal import Terminal, new_terminal
from tests.tui.waiting import wait_until_sync

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
QUESTION = "What is the capital of France?"
LONG_REQUEST = "Write a very long story about a dragon who learns to cook, with many chapters."


def ask(terminal: Terminal, text: str) -> None:
    terminal.type(text)
    terminal.send("Enter")


def stored_messages(home: Path) -> list[tuple[str, str, str]]:
    """The messages as another process sees the file (read-only, while the app may be writing)."""
    db = sqlite3.connect(f"file:{home / 'data' / STORE_FILE}?mode=ro", uri=True)
    try:
        return db.execute("SELECT role, content, state FROM messages ORDER BY id").fetchall()
    finally:
        db.close()


def tab_until_shown(terminal: Terminal, *texts: str) -> None:
    """What streamed before Esc can fill the screen and push earlier lines out of view (how far
    depends on the machine's speed): as a user would, Tab through the list and the messages until
    all of `texts` show at once; a focused message scrolls into view."""

    def shown() -> bool:
        screen = terminal.screen()
        if all(text in screen for text in texts):
            return True
        terminal.send("Tab")
        return False

    # A second between Tabs: on a busy machine the app may take that long to move the focus and
    # redraw, and Tabs sent faster than it draws skip past the message before a capture sees it.
    wait_until_sync(shown, 90, f"{texts!r} on screen, tabbing through the conversation", poll=1.0)


def test_ask_stop_quit_and_find_the_conversation_again(tmux_home, terminals):
    terminal = new_terminal(tmux_home, terminals)
    ask(terminal, QUESTION)
    terminal.wait_for("Paris", timeout=120)
    terminal.wait_for("tok/s")  # the reply finished: its speed is in the status line
    # The finished reply's KV cache is kept on disk for the next time the conversation opens.
    wait_until_sync(lambda: any((tmux_home / "data" / CACHE_FOLDER).glob("*")), 30, "the prompt cache file")
    ask(terminal, LONG_REQUEST)
    wait_until_sync(
        lambda: len(stored_messages(tmux_home)) == 4 and len(stored_messages(tmux_home)[-1][1]) > 40,
        120,
        "the long reply to stream",
    )
    terminal.send("Escape")
    terminal.wait_for("stopped")  # the status line
    # The reply's label says so too; a long reply may have scrolled it up out of view.
    tab_until_shown(terminal, "Assistant · interrupted")
    kept = stored_messages(tmux_home)[-1]
    assert kept[2] == "interrupted" and len(kept[1]) > 40
    terminal.send("C-q")
    wait_until_sync(lambda: not terminal.running(), 30, "the app to quit")

    again = new_terminal(tmux_home, terminals)
    again.send("C-f")
    again.type("capital")
    again.send("Enter")
    tab_until_shown(again, QUESTION, "Paris")  # the stopped reply below them may fill the screen
    assert [row[:1] for row in stored_messages(tmux_home)] == [("user",), ("assistant",), ("user",), ("assistant",)]


def test_kill_9_mid_reply_keeps_every_message_and_marks_the_partial_reply(tmux_home, terminals):
    terminal = new_terminal(tmux_home, terminals)
    ask(terminal, QUESTION)
    terminal.wait_for("tok/s", timeout=120)
    ask(terminal, LONG_REQUEST)
    # The partial reply reaches the file while it streams (at least every couple of seconds).
    wait_until_sync(
        lambda: len(stored_messages(tmux_home)) == 4 and len(stored_messages(tmux_home)[-1][1]) > 20,
        120,
        "a partial save of the reply",
    )
    os.kill(terminal.pid(), signal.SIGKILL)
    wait_until_sync(lambda: not terminal.running(), 30, "the app to die")

    store = Store(tmux_home / "data" / STORE_FILE)
    try:
        assert store.integrity_check() == "ok"
        conversation = store.conversations()[0]
        messages = store.messages(conversation.id)
        assert [(m.role, m.state) for m in messages] == [
            ("user", "complete"),
            ("assistant", "complete"),
            ("user", "complete"),
            ("assistant", "interrupted"),
        ]
        assert messages[0].content == QUESTION and "Paris" in messages[1].content
        assert messages[2].content == LONG_REQUEST and len(messages[3].content) > 20
    finally:
        store.close()

    again = new_terminal(tmux_home, terminals)
    again.send("C-f")
    again.type("capital")
    again.send("Enter")
    tab_until_shown(again, "Assistant · interrupted")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_termination_signal_ends_the_app_as_ctrl_q_does(tmux_home, terminals, signum):
    # Their default killed the app at once: the terminal stayed in its screen, mouse reporting on
    # and the cursor hidden, and the shell's prompt was drawn over it.
    terminal = Terminal(tmux_home)
    terminals.append(terminal)
    terminal.start(in_shell=True)
    assert terminal.display("#{alternate_on}") == "1"
    shell = terminal.pid()
    app = int(subprocess.run(["pgrep", "-P", str(shell)], capture_output=True, text=True).stdout.split()[0])
    os.kill(app, signum)
    screen = terminal.wait_for("exit=", timeout=30)
    assert f"exit={128 + signum}" in screen and f"stopped by {signal.Signals(signum).name}" in screen, screen
    assert terminal.display("#{alternate_on} #{mouse_any_flag} #{cursor_flag}") == "0 0 1"
