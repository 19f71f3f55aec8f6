"""A read-only text pane that marks stretches of its text for review (low-confidence segments).

TextArea draws its lines from `get_line`, which Textual documents as the place to add styling;
the marked stretches are given as character offsets into the text and drawn with the
`review-text-area--low` component style (the warning colour), so a person sees at a glance which
sentences the model was unsure of. Setting the text clears the marks: they belong to one text.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import TextArea


class ReviewTextArea(TextArea):
    """A TextArea whose `marked` character ranges are highlighted."""

    COMPONENT_CLASSES = {"review-text-area--low"}
    DEFAULT_CSS = """
    ReviewTextArea > .review-text-area--low {
        background: $warning 35%;
        text-style: underline;
    }
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._marked_lines: dict[int, list[tuple[int, int]]] = {}
        self.marked: list[tuple[int, int]] = []

    def load_text(self, text: str) -> None:
        """Replace the text (what setting `.text` does); marks made for the old text are dropped."""
        self.marked, self._marked_lines = [], {}
        super().load_text(text)

    def show(self, text: str, marked: Sequence[tuple[int, int]] = ()) -> None:
        """Replace the text, highlighting `marked` (start, end) character offsets into it."""
        super().load_text(text)  # also drops the cached lines, so the marks are drawn
        self.marked = list(marked)
        self._marked_lines = {}
        line_starts = [0]
        for index, char in enumerate(text):
            if char == "\n":
                line_starts.append(index + 1)
        for start, end in self.marked:
            for row, line_start in enumerate(line_starts):
                line_end = line_starts[row + 1] - 1 if row + 1 < len(line_starts) else len(text)
                if start <= line_end and end > line_start:
                    span = (max(start, line_start) - line_start, min(end, line_end) - line_start)
                    if span[1] > span[0]:
                        self._marked_lines.setdefault(row, []).append(span)

    @property
    def marked_text(self) -> list[str]:
        """The highlighted stretches, as text (for tests and for a screen reader's summary)."""
        return [self.text[start:end] for start, end in self.marked]

    def get_line(self, line_index: int) -> Text:
        line = super().get_line(line_index)
        spans = self._marked_lines.get(line_index)
        if spans:
            style = self.get_component_rich_style("review-text-area--low")
            for start, end in spans:
                line.stylize(style, start, end)
        return line
