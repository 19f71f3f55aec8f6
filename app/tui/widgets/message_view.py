"""One message of the conversation: who said it, and what, as Markdown (code blocks included).

What is drawn has its control characters shown, not sent to the terminal (printable.py): the text
is the user's or the model's, and an ESC in it would reach the terminal as it is. `content` keeps
the text as it was, for copying.
"""

from __future__ import annotations

from functools import cache

from markdown_it import MarkdownIt
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Label, Markdown
from textual.widgets.markdown import MarkdownStream

from llamadesk.app.chat.code_blocks import code_blocks
from llamadesk.app.core.printable import printable


@cache
def shared_markdown_parser() -> MarkdownIt:
    """One parser for every message, instead of the new one Textual's Markdown makes per update.

    Why: Textual builds a MarkdownIt("gfm-like") for every append of a streaming reply, ~3 ms of
    the UI thread each time (its renderer inspects itself with dir()), which on a slow machine is
    time taken from the model. A parser is reusable (each parse has its own state); parsing a
    sample at once compiles its rule chains, so later parses, some in Textual's worker thread,
    only read it.
    """
    parser = MarkdownIt("gfm-like")
    parser.parse("# h\n\n*a* **b** `c` [d](e)\n\n- f\n\n1. g\n\n> h\n\n```i\nj\n```\n\n| k |\n|---|\n| l |\n")
    return parser


ROLE_LABELS = {"user": "You", "assistant": "Assistant", "system": "System"}
MEMORY_START_TITLE = "the model remembers from here"


class PrintableStream(MarkdownStream):
    """Textual's Markdown stream, drawing each piece of a streaming reply as printable text."""

    async def write(self, markdown_fragment: str) -> None:
        await super().write(printable(markdown_fragment))


class MessageView(Vertical, can_focus=True):
    """A message; focus it (tab) to copy it or its last code block."""

    BINDINGS = [
        Binding("c", "copy_message", "Copy message"),
        Binding("b", "copy_code", "Copy code block"),
    ]

    def __init__(self, role: str, content: str, interrupted: bool = False, message_id: int | None = None) -> None:
        super().__init__(classes=role)
        self.role = role
        self.content = content
        self.message_id = message_id
        self._interrupted = interrupted
        # Made here, not in compose, so a reply can start streaming into it before it is mounted.
        self._label = Label(self._label_text(), classes="role")
        self._markdown = Markdown(printable(content), parser_factory=shared_markdown_parser)

    def compose(self) -> ComposeResult:
        yield self._label
        yield self._markdown

    def _label_text(self) -> str:
        label = ROLE_LABELS.get(self.role, self.role)
        return f"{label} · interrupted" if self._interrupted else label

    @property
    def markdown(self) -> Markdown:
        return self._markdown

    def stream(self) -> MarkdownStream:
        """A started stream that appends a reply to this message as it comes (Markdown.get_stream's kind)."""
        stream = PrintableStream(self._markdown)
        stream.start()
        return stream

    async def show(self, content: str) -> None:
        """Draw `content` in full, as the message's text (a streamed reply's one final render)."""
        self.content = content
        await self._markdown.update(printable(content))

    def set_interrupted(self, interrupted: bool) -> None:
        self._interrupted = interrupted
        self.set_class(interrupted, "interrupted")
        self._label.update(self._label_text())

    def set_memory(self, forgotten: bool, memory_start: bool) -> None:
        """Dim messages the model no longer sees; mark the first one it still does."""
        self.set_class(forgotten, "forgotten")
        self.set_class(memory_start, "memory-start")
        self.border_title = MEMORY_START_TITLE if memory_start else None

    def action_copy_message(self) -> None:
        self.app.copy_to_clipboard(self.content)
        self.notify("Message copied")

    def action_copy_code(self) -> None:
        blocks = code_blocks(self.content)
        if not blocks:
            self.notify("This message has no code block", severity="warning")
            return
        self.app.copy_to_clipboard(blocks[-1])
        self.notify("Code block copied")
