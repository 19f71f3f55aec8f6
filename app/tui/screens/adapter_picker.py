"""Pick the LoRA adapters a conversation applies to its model, from the library's adapters."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, SelectionList
from textual.widgets.selection_list import Selection

from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.tui.screens.model_picker import library_failure

if TYPE_CHECKING:
    from llamadesk.app.library.catalog import LibraryEntry

Adapters = tuple[tuple[str, float], ...]


def adapter_label(entry: LibraryEntry) -> str:
    """'my-lora (for SmolLM2-135M-Instruct)': what a row shows."""
    return f"{entry.name} (for {entry.base or 'an unrecorded base'})"


class AdapterPickerScreen(ModalScreen["Adapters | None"]):
    """Lists the library's adapters with the current ones ticked; Space toggles, A applies, Esc cancels.

    An adapter for another model can be ticked; loading refuses it with a line saying which base it needs.
    """

    CSS_PATH = Path(__file__).with_name("model_picker.tcss")
    BINDINGS = [Binding("escape", "cancel", "Cancel", priority=True), Binding("a", "apply", "Apply")]

    def __init__(self, current: Adapters) -> None:
        super().__init__()
        self.current = current
        self.scales = dict(current)

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Label("LoRA adapters for this conversation", classes="title")
            yield SelectionList[str](id="adapters")
            yield Label("Reading the library…", id="note")

    def on_mount(self) -> None:
        self._read_library()

    @work(thread=True, exclusive=True)
    def _read_library(self) -> None:
        from llamadesk.app.library.catalog import list_adapters  # reads GGUF headers: off the UI thread

        try:
            entries = list_adapters()
        except (LlamadeskError, OSError) as err:
            # A damaged library record is the user's file to fix, not a reason to end the app.
            self.app.call_from_thread(self._unreadable, library_failure(err))
            return
        self.app.call_from_thread(self._show, entries)

    def _unreadable(self, line: str) -> None:
        self.query_one("#note", Label).update(Text(line))
        self.notify(line, severity="error", markup=False)

    def _show(self, entries: list[LibraryEntry]) -> None:
        chosen = self.query_one(SelectionList)
        listed = {e.path for e in entries}
        for entry in entries:
            chosen.add_option(Selection(adapter_label(entry), entry.path, entry.path in self.scales))
        for path in self.scales:  # chosen before but no longer in the library (moved, or given by path)
            if path not in listed:
                chosen.add_option(Selection(f"{Path(path).name} (not in the library)", path, True))
        note = "Space ticks, A applies, Esc cancels." if chosen.option_count else "No adapters in the library yet"
        self.query_one("#note", Label).update(
            note if chosen.option_count else f"{note}: make one with `llamadesk convert ADAPTER_DIR`."
        )
        if chosen.option_count:
            chosen.highlighted = 0  # a SelectionList starts with no row highlighted: Space ticked nothing
        chosen.focus()

    def action_apply(self) -> None:
        selected = self.query_one(SelectionList).selected
        self.dismiss(tuple((path, self.scales.get(path, 1.0)) for path in selected))

    def action_cancel(self) -> None:
        self.dismiss(None)
