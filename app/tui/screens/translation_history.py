"""Past translations from the store, newest first; Enter brings one back, Esc closes."""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from llamadesk.app.chat.store import StoredTranslation
from llamadesk.app.core.printable import printable

PREVIEW = 40


def _preview(text: str) -> str:
    line = printable(" ".join(text.split()))
    return line if len(line) <= PREVIEW else line[: PREVIEW - 1] + "…"


class TranslationHistoryScreen(ModalScreen[StoredTranslation | None]):
    CSS_PATH = Path(__file__).with_name("dialogs.tcss")
    BINDINGS = [Binding("escape", "cancel", "Cancel", priority=True)]

    def __init__(self, entries: list[StoredTranslation]) -> None:
        super().__init__()
        self.entries = entries

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Past translations" if self.entries else "No translations yet")
            yield OptionList(
                *(
                    Option(
                        f"{e.source_language}→{e.target_language}  {_preview(e.source)}  ⇒  {_preview(e.translation)}",
                        id=str(e.id),
                    )
                    for e in self.entries
                ),
                id="history",
                markup=False,  # the texts are the user's: "[/x]" in one would end the app
            )

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(next(e for e in self.entries if str(e.id) == event.option.id))

    def action_cancel(self) -> None:
        self.dismiss(None)
