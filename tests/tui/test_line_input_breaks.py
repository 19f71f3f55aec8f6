"""A one-line answer is split at a terminal's line breaks only: a pasted path that holds U+2028
(a legal file-name character) was cut there, and the file could not be given."""

from __future__ import annotations

import pytest
from textual.app import App
from textual.widgets import Input

from llamadesk.app.tui.screens.dialogs import FIRST_LINE_NOTE, TextInputScreen, one_line_within, text_lines
from tests.tui.dialog_pilot import note, paste


class AskApp(App):
    """Only the dialog, as the translate screen asks for a file."""

    def __init__(self, value: str = "") -> None:
        super().__init__()
        self.value = value
        self.answers: list[str | None] = []

    def on_mount(self) -> None:
        self.push_screen(TextInputScreen("File to translate:", self.value), self.answers.append)


@pytest.mark.asyncio
@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x1c", "\x1e"])
async def test_a_pasted_path_is_not_cut_at_characters_that_are_not_a_terminals_line_break(separator):
    path = f"/home/me/notes{separator}2026.txt"
    async with AskApp().run_test(size=(80, 24)) as pilot:
        await paste(pilot, path + "\n")  # a file manager's copy ends with a line break
        answer = pilot.app.screen.query_one(Input)
        kept = path if separator in "\u2028\u2029" else answer.value  # C0/C1 ones are shown as pictures
        assert answer.value == kept and answer.value.endswith("2026.txt") and "/home/me/notes" in answer.value
        assert note(pilot) == ""  # one line: nothing was left out
        await pilot.press("enter")
        await pilot.pause()
    assert pilot.app.answers == [kept]


@pytest.mark.asyncio
async def test_a_terminals_line_breaks_still_end_the_line():
    async with AskApp().run_test(size=(80, 24)) as pilot:
        await paste(pilot, "first\r\nsecond")
        assert pilot.app.screen.query_one(Input).value == "first" and FIRST_LINE_NOTE in note(pilot)


def test_a_given_value_is_split_the_same_way():
    assert one_line_within("a\u2028b", 0) == ("a\u2028b", "")
    assert one_line_within("a\rb", 0) == ("a", "Only its first line is kept")
    assert one_line_within("a\n", 0) == ("a", "")
    assert text_lines("") == [] and text_lines("x\r\n\r\ny") == ["x", "", "y"]
