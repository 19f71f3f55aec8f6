"""The translation screen in a real terminal (tmux) with the real gemma3-270m starter:
switch with F6, translate a sentence, swap the languages, translate a file with a progress bar."""

from __future__ import annotations

import pytest

from tests.tui.tmux_terminal import new_terminal
from tests.tui.waiting import wait_until_sync

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_translate_swap_and_a_file_in_a_real_terminal(tmux_home, terminals, tmp_path):
    terminal = new_terminal(tmux_home, terminals)
    terminal.send("F6")
    terminal.wait_for("Detect language")
    terminal.type("The weather is nice today.")
    terminal.wait_for("nice today.")
    terminal.send("C-r")
    done = terminal.wait_for("done in", timeout=180)
    assert "English (detected" in done and "French" in done
    right_pane = [line[len(line) // 2 :] for line in done.splitlines()]
    assert any(line.strip(" │▏▕┃|").strip() for line in right_pane[3:8]), done

    terminal.send("F7")

    def pickers() -> str:
        return next((line for line in terminal.screen().splitlines() if "⇄" in line), "")

    swapped = wait_until_sync(
        lambda: 0 <= pickers().find("French") < pickers().find("English") and pickers(), 10, "the swap"
    )
    assert "Detect" not in swapped

    source = tmp_path / "notes.md"
    source.write_text(
        "# Notes\n\n" + "".join(f"This is sentence number {n}.\n\n" for n in range(1, 5)), encoding="utf-8"
    )
    terminal.send("F7")  # back to English -> French
    terminal.send("C-o")
    terminal.wait_for("File to translate")
    terminal.type(str(source))
    terminal.wait_for("notes.md")
    terminal.send("Enter")
    progress = terminal.wait_for("/5", timeout=120)
    assert "━" in progress, "a progress bar is drawn"
    out = tmp_path / "notes.fr.md"
    wait_until_sync(out.exists, 180, "the translated file")
    assert out.read_text(encoding="utf-8").startswith("# ")
