"""Every key of the screen below, with what it does (F1 or ?)."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

KEY_COLUMN = 14


def keys_text(rows: list[tuple[str, str]]) -> str:
    """Two aligned columns: key, what it does."""
    return "\n".join(f"{key:<{KEY_COLUMN}} {description}" for key, description in rows)


class HelpScreen(ModalScreen[None]):
    CSS_PATH = Path(__file__).with_name("help.tcss")
    BINDINGS = [Binding("escape,f1,question_mark,q", "dismiss", "Close", priority=True)]

    def __init__(self, rows: list[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Label("Keys", classes="title")
            yield Static(keys_text(self.rows), markup=False)
            yield Label("Every action is also in the command palette (ctrl+p). Esc closes this.", classes="note")
