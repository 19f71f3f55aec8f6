"""Pick the model for this conversation from the local library: size, quantization, fits or not."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import LlamadeskError

if TYPE_CHECKING:
    from llamadesk.app.library.catalog import LibraryEntry

COLUMNS = ("Model", "Params", "Quant", "File", "Fits", "Chat")


def library_failure(err: LlamadeskError | OSError) -> str:
    """The one line a library that cannot be read leaves (a damaged library.json says how to fix it)."""
    if isinstance(err, LlamadeskError):
        return str(err)
    return f"cannot read the library ({err.strerror or err})"


def model_rows(entries: list[LibraryEntry]) -> list[tuple[str, ...]]:
    """One table row per model, in COLUMNS order."""
    return [
        (
            e.name,
            e.size_label,
            e.quantization,
            format_bytes(e.file_size),
            "yes" if e.fits else "no",
            "yes" if e.has_chat_template else "no",
        )
        for e in entries
    ]


class ModelPickerScreen(ModalScreen[str | None]):
    """Lists the library (read in a thread: a starter may need assembling); Enter picks."""

    CSS_PATH = Path(__file__).with_name("model_picker.tcss")
    BINDINGS = [Binding("escape", "cancel", "Cancel", priority=True)]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Label(f"Pick a model (now: {self.current})", classes="title")
            yield DataTable(id="models", cursor_type="row")
            yield Label("Reading the library…", id="note")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self._read_library()

    @work(thread=True, exclusive=True)
    def _read_library(self) -> None:
        # Imported here: reading GGUF headers pulls in gguf and numpy, which would slow the app's start.
        from llamadesk.app.library.catalog import list_models

        try:
            rows = model_rows(list_models())
        except (LlamadeskError, OSError) as err:
            # A damaged library record is the user's file to fix, not a reason to end the app.
            self.app.call_from_thread(self._unreadable, library_failure(err))
            return
        self.app.call_from_thread(self._show, rows)

    def _unreadable(self, line: str) -> None:
        self.query_one("#note", Label).update(Text(line))
        self.notify(line, severity="error", markup=False)

    def _show(self, rows: list[tuple[str, ...]]) -> None:
        table = self.query_one(DataTable)
        for row in rows:
            table.add_row(*row, key=row[0])
        names = [row[0] for row in rows]
        if self.current in names:
            table.move_cursor(row=names.index(self.current))
        self.query_one("#note", Label).update("Enter picks, Esc cancels. Switching unloads the model in use.")
        table.focus()

    @on(DataTable.RowSelected)
    def _picked(self, event: DataTable.RowSelected) -> None:
        self.dismiss(event.row_key.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
