"""A read-only text pane that marks stretches of its text for review (low-confidence segments).

TextArea draws its lines from `get_line`, which Textual documents as the place to add styling;
the marked stretches are drawn with the `review-text-area--low` component style (the warning
colour), so a person sees at a glance which sentences the model was unsure of. Setting the text
clears the marks: they belong to one text.

A translation streams into the pane token by token. Replacing the whole text each time
(`show`) costs time in proportion to the text: Textual re-splits and re-wraps every line, about
3 ms for 40 lines and 50 ms for 1,000 on this machine, taken from the model's thread on every
token. `replace_from_line` and `append` change only the end of the document, which is where a
translation grows, so a token costs the same at the end of a long document as at the start.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from rich.text import Text
from textual.widgets.text_area import Location

from llamadesk.app.tui.widgets.plain_text_area import PlainTextArea


class ReviewTextArea(PlainTextArea):
    """A TextArea whose marked stretches of text are highlighted."""

    COMPONENT_CLASSES = {"review-text-area--low"}
    DEFAULT_CSS = """
    ReviewTextArea > .review-text-area--low {
        background: $warning 35%;
        text-style: underline;
    }
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._marks: list[tuple[Location, Location]] = []  # (start, end) of each marked stretch
        self._marked_lines: dict[int, list[tuple[int, int]]] = {}  # row -> (start, end) columns drawn marked

    def load_text(self, text: str) -> None:
        """Replace the text (what setting `.text` does); marks made for the old text are dropped."""
        self._marks, self._marked_lines = [], {}
        super().load_text(text)

    def show(self, text: str, marked: Sequence[tuple[int, int]] = ()) -> None:
        """Replace the text, highlighting `marked` (start, end) character offsets into it; the view
        stays where it was (a finished translation replaces the one the reader was scrolling)."""
        x, y = self.scroll_x, self.scroll_y
        super().load_text(text)  # also drops the cached lines, so the marks are drawn
        # load_text scrolls to the cursor after the next refresh; this runs after that.
        self.call_after_refresh(self.scroll_to, x, y, animate=False)
        self._marks, self._marked_lines = [], {}
        self._mark(text, 0, marked)

    def replace_from_line(self, row: int, text: str, marked: Sequence[tuple[int, int]] = ()) -> None:
        """Replace the lines from `row` to the end with the lines of `text` (none if it is empty),
        highlighting `marked` (start, end) offsets into `text`; the lines before `row` and their
        marks stay as they are."""
        row = max(0, min(row, self.document.line_count))
        if row == 0:
            start, insert = (0, 0), text
        else:  # from the end of the line before: its line break goes with the lines replaced
            start, insert = (row - 1, len(self.document.get_line(row - 1))), ("\n" + text if text else "")
        self._marks = [(first, last) for first, last in self._marks if first[0] < row]
        self._marked_lines = {line: spans for line, spans in self._marked_lines.items() if line < row}
        self._edit(insert, start)
        self._mark(text, row, marked)

    def append(self, text: str) -> None:
        """Add `text` at the end of the document (no marks)."""
        if text:
            self._edit(text, self.document.end)

    def _edit(self, insert: str, start: Location) -> None:
        # Through the TextArea's own edit, which re-wraps only the lines it touches. The pane is
        # read-only: nothing to undo, and a history of every token would only grow. An edit
        # scrolls to the cursor; the view stays where the reader put it instead.
        x, y = self.scroll_x, self.scroll_y
        self.replace(insert, start, self.document.end, maintain_selection_offset=True)
        self.history.clear()
        self.scroll_to(x, y, animate=False, immediate=True)
        self.refresh()

    def _mark(self, text: str, first_row: int, marked: Sequence[tuple[int, int]]) -> None:
        """Record `marked` offsets into `text`, whose first line is the document's row `first_row`."""
        if not marked:
            return
        line_starts = [0]
        position = text.find("\n")
        while position >= 0:
            line_starts.append(position + 1)
            position = text.find("\n", position + 1)

        def row_of(offset: int) -> int:
            return bisect.bisect_right(line_starts, offset) - 1

        for start, end in marked:
            first, last = row_of(start), row_of(end)
            self._marks.append(
                ((first_row + first, start - line_starts[first]), (first_row + last, end - line_starts[last]))
            )
            for row in range(first, last + 1):  # the lines the stretch touches
                line_start = line_starts[row]
                line_end = line_starts[row + 1] - 1 if row + 1 < len(line_starts) else len(text)
                span = (max(start, line_start) - line_start, min(end, line_end) - line_start)
                if span[1] > span[0]:
                    self._marked_lines.setdefault(first_row + row, []).append(span)
        self._line_cache.clear()  # lines already drawn may now be marked

    @property
    def marked_text(self) -> list[str]:
        """The highlighted stretches, as text (for tests and for a screen reader's summary)."""
        return [self.document.get_text_range(start, end) for start, end in self._marks]

    def get_line(self, line_index: int) -> Text:
        line = super().get_line(line_index)
        spans = self._marked_lines.get(line_index)
        if spans:
            style = self.get_component_rich_style("review-text-area--low")
            for start, end in spans:
                line.stylize(style, start, end)
        return line
