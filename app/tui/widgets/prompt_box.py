"""The prompt box: Enter sends; ctrl+j (or shift+enter where the terminal reports it) adds a line."""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.strip import Strip
from textual.widgets import TextArea

# ctrl+j is a plain line feed, which every terminal sends; shift+enter only some report.
NEWLINE_KEYS = ("ctrl+j", "shift+enter", "alt+enter")


class PromptBox(TextArea):
    """A multi-line input whose Enter key submits."""

    class Submitted(Message):
        def __init__(self, prompt_box: PromptBox, text: str) -> None:
            super().__init__()
            self.prompt_box = prompt_box
            self.text = text

    def __init__(self, **kwargs) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, tab_behavior="focus", **kwargs)

    def render_line(self, y: int) -> Strip:
        if self.content_size.width < 1:
            # Textual's TextArea raises wrapping its placeholder into zero columns, which a
            # terminal a few columns wide leaves it: there is nothing to draw there anyway.
            return Strip.blank(self.size.width, self.rich_style)
        return super().render_line(y)

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            if self.text.strip():
                self.post_message(self.Submitted(self, self.text))
            return
        if event.key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            self.insert("\n")
            return
        await super()._on_key(event)
