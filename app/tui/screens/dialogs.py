"""Small modal dialogs: confirm a destructive action, or ask for one line of text.

A question is drawn as plain text, never read as markup: it names the user's things (a title, a
file, a model), and "[/x]" in one would end the app. The line asked for is one line as the user
sees it: a paste keeps its first line, its control characters are shown (a pasted ESC went to the
terminal as it was), and where the answer has a most it can hold, a longer paste is cut to fit and
the dialog says so (Textual's Input refused such a paste whole, without a word).
"""

from __future__ import annotations

from pathlib import Path

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from llamadesk.app.core.line_breaks import text_lines
from llamadesk.app.core.printable import printable_in_place


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no; Enter/y confirms, Esc/n cancels."""

    CSS_PATH = Path(__file__).with_name("dialogs.tcss")
    # Priority, as every dialog's closing key: the dialog is gone before the next key is looked at,
    # so keys typed in the same burst reach the screen below instead of the closing dialog.
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", priority=True),
        Binding("n,escape", "answer(False)", "No", priority=True),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


FIRST_LINE_NOTE = "Only the first line of the pasted text was kept"


def cut_note(max_length: int) -> str:
    """What the dialog says when text did not fit in `max_length` characters."""
    return f"Cut to its first {max_length} characters: no more fit here"


class LineInput(Input):
    """An Input for one line: what goes in has its control characters shown, and a paste that is
    longer than `max_length` allows is cut to what fits (Noted says so)."""

    class Noted(Message):
        """Something the user should know about what they typed or pasted."""

        def __init__(self, note: str) -> None:
            super().__init__()
            self.note = note

    def replace(self, text: str, start: int, end: int) -> None:
        # Every insertion (a key, a paste) comes through here: one character for one keeps the
        # cursor and the selection where they were.
        text = printable_in_place(text)
        room = self._room(start, end)
        if room is not None and len(text) > room > 0:
            text = text[:room]
            self.post_message(self.Noted(cut_note(self.max_length)))
        super().replace(text, start, end)

    def _room(self, start: int, end: int) -> int | None:
        """How many characters can replace value[start:end]; None: no limit."""
        if not self.max_length:
            return None
        start, end = sorted((max(0, start), min(len(self.value), end)))
        return self.max_length - len(self.value) + (end - start)

    def restricted(self) -> None:
        # A key that would go past max_length: the bell alone did not say why nothing was typed.
        self.post_message(self.Noted(cut_note(self.max_length)))
        super().restricted()

    def _on_paste(self, event: events.Paste) -> None:
        event.prevent_default()  # Input's own handler would insert the first line a second time
        event.stop()
        lines = [line for line in text_lines(event.text) if line.strip()]  # the first with text, as titles take it
        if not lines:
            return
        if len(lines) > 1:
            self.post_message(self.Noted(FIRST_LINE_NOTE))
        start, end = sorted(self.selection)
        self.replace(lines[0], start, end)


def one_line_within(value: str, max_length: int) -> tuple[str, str]:
    """`value` as LineInput takes it (its first line, control characters shown, at most
    `max_length` characters; 0: any), and a note saying what was left out ("": nothing)."""
    lines = text_lines(value) or [""]
    line, note = lines[0], ("Only its first line is kept" if len(lines) > 1 else "")
    if max_length and len(line) > max_length:
        line, note = line[:max_length], cut_note(max_length)
    return printable_in_place(line), note


class TextInputScreen(ModalScreen[str | None]):
    """One line of text (a new title, a file name); Esc cancels. `max_length` (0: none) is the
    most characters the answer may have: the value given is cut to it, saying so."""

    CSS_PATH = Path(__file__).with_name("dialogs.tcss")
    BINDINGS = [Binding("escape", "cancel", "Cancel", priority=True)]

    def __init__(self, question: str, value: str = "", max_length: int = 0) -> None:
        super().__init__()
        self.question = question
        self.max_length = max_length
        self.value, first_note = one_line_within(value, max_length)
        # What was left out of the answer, each said once: one paste can lose both lines and length.
        self.notes = [first_note] if first_note else []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, markup=False)
            yield LineInput(self.value, id="answer", max_length=self.max_length)
            yield Label("; ".join(self.notes), id="note", markup=False, variant="warning")

    def on_mount(self) -> None:
        self.query_one("#note", Label).display = bool(self.notes)

    @on(LineInput.Noted)
    def _noted(self, event: LineInput.Noted) -> None:
        if event.note in self.notes:
            return
        self.notes.append(event.note)
        note = self.query_one("#note", Label)
        note.update("; ".join(self.notes))
        note.display = True

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
