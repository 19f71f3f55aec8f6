"""A TextArea that draws control characters as visible stand-ins instead of sending them to the terminal.

Textual hands a line's characters to the terminal as they are: an ESC in a stored translation or
an opened file renamed the terminal window (OSC 0) or wiped the screen (ESC [2J) when the
translation screen showed it. The text itself is left alone (what is translated, copied or saved
is what was there); only each drawn line has its control characters replaced one for one, so the
cursor and selections stay on the characters they were on.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import TextArea

from llamadesk.app.core.printable import printable_in_place


class PlainTextArea(TextArea):
    def get_line(self, line_index: int) -> Text:
        line = super().get_line(line_index)
        shown = printable_in_place(line.plain)
        if shown != line.plain:
            line.plain = shown  # the same length: the line's styles stay on their characters
        return line
