"""The installed `llamadesk` in a real terminal (tmux), with the real smollm2 starter model.

Ask, read Paris, stop a long reply with Esc, quit with ctrl+q, start again and find the
conversation; and kill -9 mid-reply: everything said before survives, the partial reply is
marked interrupted, and SQLite's integrity check passes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest

from llamadesk.app.chat.store import STORE_FILE, Store
from tests.conftest import LLAMADESK
from tests.tui.waiting import wait_until_sync

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
# A tmux server of our own: other tmux users on the machine neither see nor disturb these sessions.
TMUX = ("tmux", "-L", "llamadesk-tests")
QUESTION = "What is the capital of France?"
LONG_REQUEST = "Write a very long story about a dragon who learns to cook, with many chapters."


class Terminal:
    """One tmux session running llamadesk with its own home folder."""

    def __init__(self, home: Path, width: int = 100, height: int = 30):
        self.home = home
        self.name = f"llamadesk-test-{uuid.uuid4().hex[:8]}"
        self.width, self.height = width, height

    def start(self) -> None:
        command = f"exec env LLAMADESK_HOME={self.home} {LLAMADESK}"
        new_session = [
            *TMUX,
            "new-session",
            "-d",
            "-s",
            self.name,
            "-x",
            str(self.width),
            "-y",
            str(self.height),
            command,
        ]
        # tmux refuses while the server of the previous test's last session is still exiting.
        wait_until_sync(
            lambda: subprocess.run(new_session, capture_output=True).returncode == 0, 5, "tmux to start", poll=0.2
        )
        self.wait_for("CPU", timeout=120)  # the status line shows the backend once the model is loaded

    def screen(self) -> str:
        result = subprocess.run([*TMUX, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return result.stdout

    def send(self, *keys: str) -> None:
        subprocess.run([*TMUX, "send-keys", "-t", self.name, *keys], check=True)

    def type(self, text: str) -> None:
        subprocess.run([*TMUX, "send-keys", "-t", self.name, "-l", text], check=True)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        try:
            return wait_until_sync(lambda: text in (screen := self.screen()) and screen, timeout, f"{text!r} on screen")
        except AssertionError as err:
            raise AssertionError(f"{err}; the screen shows:\n{self.screen()}") from None

    def pid(self) -> int:
        out = subprocess.run([*TMUX, "display", "-p", "-t", self.name, "#{pane_pid}"], capture_output=True, text=True)
        return int(out.stdout.strip())

    def running(self) -> bool:
        return subprocess.run([*TMUX, "has-session", "-t", self.name], capture_output=True).returncode == 0

    def close(self) -> None:
        subprocess.run([*TMUX, "kill-session", "-t", self.name], capture_output=True)


@pytest.fixture
def home(tmp_path):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the end-to-end test; install it (apt-get install tmux)")
    config = tmp_path / "config"
    config.mkdir()
    # Greedy for a reproducible answer; one thread because the test machine's CPUs are shared.
    (config / "config.json").write_text(json.dumps({"temperature": 0.0, "max_tokens": 2000}))
    # How models load (shared with the CLI): pinned like conftest.PINNED_LOAD.
    pinned = {"threads": 1, "batch": 512, "kv_type": "f16", "gpu_layers": 0, "flash_attn": True}
    (config / "load.json").write_text(json.dumps(pinned))
    return tmp_path


@pytest.fixture
def terminals():
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


def new_terminal(home: Path, terminals: list[Terminal]) -> Terminal:
    terminal = Terminal(home)
    terminals.append(terminal)
    terminal.start()
    return terminal


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

    wait_until_sync(shown, 30, f"{texts!r} on screen, tabbing through the conversation", poll=0.3)


def test_ask_stop_quit_and_find_the_conversation_again(home, terminals):
    terminal = new_terminal(home, terminals)
    ask(terminal, QUESTION)
    terminal.wait_for("Paris", timeout=120)
    terminal.wait_for("tok/s")  # the reply finished: its speed is in the status line
    ask(terminal, LONG_REQUEST)
    wait_until_sync(
        lambda: len(stored_messages(home)) == 4 and len(stored_messages(home)[-1][1]) > 40,
        120,
        "the long reply to stream",
    )
    terminal.send("Escape")
    terminal.wait_for("stopped")  # the status line
    # The reply's label says so too; a long reply may have scrolled it up out of view.
    tab_until_shown(terminal, "Assistant · interrupted")
    kept = stored_messages(home)[-1]
    assert kept[2] == "interrupted" and len(kept[1]) > 40
    terminal.send("C-q")
    wait_until_sync(lambda: not terminal.running(), 30, "the app to quit")

    again = new_terminal(home, terminals)
    again.send("C-f")
    again.type("capital")
    again.send("Enter")
    tab_until_shown(again, QUESTION, "Paris")  # the stopped reply below them may fill the screen
    assert [row[:1] for row in stored_messages(home)] == [("user",), ("assistant",), ("user",), ("assistant",)]


def test_kill_9_mid_reply_keeps_every_message_and_marks_the_partial_reply(home, terminals):
    terminal = new_terminal(home, terminals)
    ask(terminal, QUESTION)
    terminal.wait_for("tok/s", timeout=120)
    ask(terminal, LONG_REQUEST)
    # The partial reply reaches the file while it streams (at least every couple of seconds).
    wait_until_sync(
        lambda: len(stored_messages(home)) == 4 and len(stored_messages(home)[-1][1]) > 20,
        120,
        "a partial save of the reply",
    )
    os.kill(terminal.pid(), signal.SIGKILL)
    wait_until_sync(lambda: not terminal.running(), 30, "the app to die")

    store = Store(home / "data" / STORE_FILE)
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

    again = new_terminal(home, terminals)
    again.send("C-f")
    again.type("capital")
    again.send("Enter")
    tab_until_shown(again, "Assistant · interrupted")
