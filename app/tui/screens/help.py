"""Every key of the screen below, with what it does (F1 or ?)."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown


def keys_markdown(rows: list[tuple[str, str]]) -> str:
    """A Markdown table of (key, what it does)."""
    lines = ["# Keys", "", "| Key | Action |", "|---|---|"]
    lines += [f"| `{key}` | {description} |" for key, description in rows]
    lines += ["", "Every action is also in the command palette (ctrl+p). Esc closes this."]
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    CSS_PATH = Path(__file__).with_name("help.tcss")
    BINDINGS = [Binding("escape,f1,question_mark,q", "dismiss", "Close")]

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(keys_markdown(self.rows))
