"""The conversation list: a search box over the titles, most recent first.

Titles are the user's text (a prompt's start, a rename, `chat --save`): they are drawn as they are,
never read as markup ("[/foo] hi" would end the app, "[@click=app.quit]" would run an action), and
with their control characters shown, not sent to the terminal (printable.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from llamadesk.app.chat.store import Conversation
from llamadesk.app.core.printable import printable

NEW_CONVERSATION_LABEL = "+ New conversation"


class ConversationList(Vertical):
    """Lists conversations; tells its screen which one was chosen or what to search."""

    class Chosen(Message):
        def __init__(self, conversation_id: int | None) -> None:
            super().__init__()
            self.conversation_id = conversation_id  # None: a new conversation

    class SearchChanged(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def compose(self) -> ComposeResult:
        yield Input(placeholder="Search titles", id="search")
        yield OptionList(id="conversations", markup=False)

    def show(self, conversations: Sequence[Conversation], current: int | None) -> None:
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_option(Option(NEW_CONVERSATION_LABEL, id="new"))
        options.add_options(Option(printable(c.title), id=str(c.id)) for c in conversations)
        ids = ["new"] + [str(c.id) for c in conversations]
        key = str(current) if current is not None else "new"
        if key in ids:
            options.highlighted = ids.index(key)

    def focus_search(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.SearchChanged(event.value))

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        # Enter in the search box opens the best match (the first conversation listed).
        event.stop()
        options = self.query_one(OptionList)
        if options.option_count > 1:
            self.post_message(self.Chosen(int(options.get_option_at_index(1).id)))

    @on(OptionList.OptionSelected, "#conversations")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        option_id = event.option.id
        self.post_message(self.Chosen(None if option_id == "new" else int(option_id)))
