"""A real terminal for end-to-end tests: llamadesk in a tmux session, read with capture-pane."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import LLAMADESK
from tests.tui.waiting import wait_until_sync

# A tmux server of our own per test process: other tmux users on the machine, and the other
# workers of a parallel run (pytest -n), neither see nor disturb these sessions.
TMUX = ("tmux", "-L", f"llamadesk-tests-{os.getpid()}")


class Terminal:
    """One tmux session running llamadesk with its own home folder."""

    def __init__(self, home: Path, width: int = 100, height: int = 30):
        self.home = home
        self.name = f"llamadesk-test-{uuid.uuid4().hex[:8]}"
        self.width, self.height = width, height

    def start(self, in_shell: bool = False) -> None:
        """Open the app; `in_shell`: under a shell that stays after it ends (to see what it left
        on the terminal, and its exit status)."""
        command = f"exec env LLAMADESK_HOME={self.home} {LLAMADESK}"
        if in_shell:
            command = f"env LLAMADESK_HOME={self.home} {LLAMADESK}; echo exit=$?; exec sleep 600"
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

    def display(self, what: str) -> str:
        """A tmux format's value for the pane (#{alternate_on}: whether it shows an app's screen)."""
        out = subprocess.run([*TMUX, "display", "-p", "-t", self.name, what], capture_output=True, text=True)
        return out.stdout.strip()

    def running(self) -> bool:
        return subprocess.run([*TMUX, "has-session", "-t", self.name], capture_output=True).returncode == 0

    def close(self) -> None:
        subprocess.run([*TMUX, "kill-session", "-t", self.name], capture_output=True)


def pinned_home(tmp_path: Path) -> Path:
    """A llamadesk home whose config makes replies greedy and loads pinned like conftest.PINNED_LOAD."""
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


def new_terminal(home: Path, terminals: list[Terminal]) -> Terminal:
    terminal = Terminal(home)
    terminals.append(terminal)
    terminal.start()
    return terminal
