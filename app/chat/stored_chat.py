"""A stored conversation continued outside the app (`llamadesk chat --continue` / `--conversation ID`).

The CLI and the app share the store and the prompt cache: a conversation started in one goes on in
the other, and its KV cache, written after each reply, spares the next one reading it all again.
The question is stored at once; the reply as it streams, rewritten at most once a second (as the
app saves it) and marked "interrupted" until it ends normally. So Ctrl-C, SIGTERM or SIGHUP keep
what was said, and a process killed outright (SIGKILL) keeps what was said up to a second before.
When the store stops saving partway through a turn (a full disk), the rest of the turn goes on in
memory and `what_the_file_kept` says how much of it the file holds. A turn holds its conversation's
lock (turn_lock.py), so another llamadesk cannot take one there at the same time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from llamadesk.app.chat.prompt_cache import PromptCache
from llamadesk.app.chat.store import (
    Conversation,
    ConversationDeleted,
    ConversationSettings,
    MessageState,
    Store,
    StoredMessage,
)
from llamadesk.app.chat.turn_lock import TurnLock, claim_turn
from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.core.line_breaks import text_lines
from llamadesk.app.core.printable import printable
from llamadesk.app.engine.types import ChatMessage

TITLE_LENGTH = 48
# A title given by hand (F2): room for more than a prompt's first words, and still a few lines in the
# conversation list (a 100,000-character one made the list and the status line unusable).
GIVEN_TITLE_LENGTH = 100
# A streaming reply is rewritten in the store this often (the app's and the CLI's), so a killed process loses little.
SAVE_INTERVAL_S = 1.0


def answered(messages: Sequence[StoredMessage]) -> list[StoredMessage]:
    """What a model is told of stored messages: the questions and replies with text, each question
    with its reply right after it. A question whose reply was stopped before its first word, or
    never stored (the process killed first), is left out with that reply: sent on, it put two
    questions in a row, which chat templates that want turns to alternate refuse (Gemma's,
    Mistral's), so the conversation could never go on."""
    spoken = [m for m in messages if m.content and m.role in ("user", "assistant")]
    return [
        m
        for i, m in enumerate(spoken)
        if m.role != "user" or (i + 1 < len(spoken) and spoken[i + 1].role == "assistant")
    ]


def title_from_prompt(prompt: str) -> str:
    """A conversation's first title: its first line, shortened (as the app names them), with its
    control characters shown (piped text's escape sequences would retitle or clear a terminal)."""
    return shortened(first_line_shown(prompt) or "New conversation", TITLE_LENGTH)


def given_title(text: str) -> str:
    """A title typed or pasted by hand (F2), made as title_from_prompt makes one, but at most
    GIVEN_TITLE_LENGTH characters; "" when it has no text."""
    return shortened(first_line_shown(text), GIVEN_TITLE_LENGTH)


def first_line_shown(text: str) -> str:
    """The first line of `text` that has any, stripped, with its control characters shown."""
    return printable(text_lines(text.strip())[0]).strip() if text.strip() else ""


def shortened(line: str, length: int) -> str:
    """`line` when it has at most `length` characters, else its start and "…" in `length`."""
    return line if len(line) <= length else line[: length - 1] + "…"


def find_conversation(store: Store, conversation_id: int | None) -> Conversation:
    """Conversation `conversation_id`, or the most recently active one when it is None."""
    if conversation_id is None:
        latest = store.conversations()
        if not latest:
            raise BadInputError(
                "there is no stored conversation to continue; start one in the app or with `llamadesk chat --save`"
            )
        return latest[0]
    # SQLite's integers are 64-bit: a larger id is no conversation (it raised OverflowError)
    if not 0 < conversation_id < 2**63:
        raise BadInputError(
            f"conversation {conversation_id} does not exist; `llamadesk chat --list` shows the stored ones"
        )
    try:
        return store.conversation(conversation_id)
    except LlamadeskError:
        raise BadInputError(
            f"conversation {conversation_id} does not exist; `llamadesk chat --list` shows the stored ones"
        ) from None


class StoredChat:
    """One stored conversation as the CLI talks in it: its turns, its messages, its prompt cache.

    `conversation` None: a new one, stored (and titled) with its first question.
    """

    def __init__(
        self,
        store: Store,
        conversation: Conversation | None,
        settings: ConversationSettings,
        cache: PromptCache | None,
    ):
        self.store = store
        self.conversation = conversation
        self.settings = settings
        self.cache = cache
        self.restored_tokens = 0
        self._started_here = False  # the conversation was created by this chat's first question
        self._reply: StoredMessage | None = None  # the reply being streamed, stored as it grows
        self._turn_ids: list[int] = []  # the stored id of each message turns() returned
        self._reply_saved_at = 0.0
        # What the store's file holds of the latest turn (the store may stop saving partway):
        # whether the question reached it, and the reply's text and state as last written there.
        self._question_in_file = False
        self._reply_in_file: tuple[str, MessageState] | None = None
        self._reply_said = ""
        self._turn: TurnLock | None = None  # this conversation's turn, while one is taken

    def claim_turn(self) -> None:
        """Hold the conversation's turn from now until release_turn (already held: nothing);
        TurnTaken when another llamadesk is taking one. A new conversation is claimed as its first
        question creates it."""
        if self.conversation is not None and self._turn is None:
            self._turn = claim_turn(self.store, self.conversation.id)

    def release_turn(self) -> None:
        if self._turn is not None:
            self._turn.release()
            self._turn = None

    def turns(self) -> list[ChatMessage]:
        """What the model is told of the conversation so far (answered: the answered questions and their replies)."""
        if self.conversation is None:
            self._turn_ids = []
            return []
        spoken = answered(self.store.messages(self.conversation.id))
        self._turn_ids = [m.id for m in spoken]
        return [{"role": m.role, "content": m.content} for m in spoken]

    def memory_start(self) -> int:
        """Where in turns() the model's memory began in the latest reply (stored with the
        conversation, so a reopened one reads the window its prompt cache holds; 0: the first)."""
        if self.conversation is None:
            return 0
        start_id = self.store.conversation(self.conversation.id).memory_start_id
        return self._turn_ids.index(start_id) if start_id in self._turn_ids else 0

    def remember_memory_start(self, memory_start: int, question: StoredMessage) -> None:
        """Store where the model's memory began for this reply (an index into turns() and the question)."""
        assert self.conversation is not None, "a reply follows a question"
        ids = [*self._turn_ids, question.id]
        self.store.set_memory_start(self.conversation.id, ids[memory_start] if 0 < memory_start < len(ids) else None)

    def add_question(self, text: str) -> StoredMessage:
        if self.conversation is None:
            self.conversation = self.store.new_conversation(title_from_prompt(text), self.settings)
            self._started_here = True
            self.claim_turn()  # before its first message: `chat --continue` may pick it up at once
        message = self.store.add_message(self.conversation.id, "user", text)
        self._question_in_file, self._reply_in_file, self._reply_said = self._saving(), None, ""
        return message

    def take_back(self, message: StoredMessage) -> None:
        """A question the model could not take (its template refused it, the prompt is longer than
        the context, the command was stopped before the reply began): as if it was never asked. A
        conversation this question started goes with it, so a failed `chat --save` leaves no empty
        conversation behind."""
        if self._reply is not None:
            self.store.delete_message(self._reply.id)
            self._reply = None
        self.store.delete_message(message.id)
        if self._started_here and self.conversation is not None and not self.store.messages(self.conversation.id):
            self.store.delete(self.conversation.id)
            self.conversation = None
            self._started_here = False

    def before_reply(self, engine: object, prompt_tokens: Sequence[int]) -> int:
        """Load what the prompt cache holds of this prompt into the engine; the tokens it gave."""
        self.restored_tokens = 0
        if self.cache is not None and self.conversation is not None:
            self.restored_tokens = self.cache.restore(engine, self.conversation.id, prompt_tokens)
        return self.restored_tokens

    def start_reply(self) -> None:
        """Store the reply before its first word (empty, "interrupted"), to be rewritten as it grows."""
        assert self.conversation is not None, "a reply follows a question"
        self._reply = self.store.add_message(self.conversation.id, "assistant", "", "interrupted")
        self._reply_saved_at = time.monotonic()
        self._kept_in_file(self._reply)

    def reply_grew(self, parts: Sequence[str]) -> None:
        """The reply so far (its pieces): rewritten in the store when a second has passed since the last time."""
        if self._reply is None or time.monotonic() - self._reply_saved_at < SAVE_INTERVAL_S:
            return
        self._reply = self.store.update_message(self._reply, "".join(parts), "interrupted")
        self._reply_saved_at = time.monotonic()
        self._kept_in_file(self._reply)

    def end_reply(self, engine: object, text: str, stopped: bool, keep_cache: bool = True) -> None:
        """Store the reply as it ended, then queue the KV cache for writing (the reply is already shown)."""
        assert self.conversation is not None and self._reply is not None, "start_reply came first"
        reply, self._reply = self._reply, None
        self._reply_said = text
        self._kept_in_file(self.store.update_message(reply, text, "interrupted" if stopped else "complete"))
        if not self.store.has_message(reply.id):  # its conversation was deleted elsewhere meanwhile
            raise ConversationDeleted(
                f"conversation {self.conversation.id} was deleted elsewhere (in another window or program); "
                "this message was not saved"
            )
        if self.cache is not None and keep_cache:
            self.cache.save(engine, self.conversation.id)

    def _saving(self) -> bool:
        """Whether the store's writes still reach its file (after one fails, they go to memory)."""
        return self.store.not_saved is None

    def _kept_in_file(self, reply: StoredMessage) -> None:
        if self._saving():
            self._reply_in_file = (reply.content, reply.state)

    def what_the_file_kept(self) -> str:
        """One line for a turn during which the store stopped saving (`store.not_saved` is set): why,
        what its file holds of the question and the reply (the rest was only in memory), what to do."""
        if not self._question_in_file:
            kept = "neither the question nor any of the reply was saved"
        elif self._reply_in_file is None or not self._reply_in_file[0]:
            kept = "the question was saved but none of the reply"
        elif self._reply_in_file == (self._reply_said, "complete"):
            kept = "the question and the reply were saved"
        else:
            saved = self._reply_in_file[0]
            kept = (
                f"the reply was saved up to where it stopped ({len(saved)} of {len(self._reply_said)} characters,"
                " marked interrupted)"
            )
        if self.store.disk_full:
            remedy = "free some space on the disk before you go on"
        elif self.store.locked_out:
            remedy = "another program held it locked: go on once it is free"
        else:
            remedy = "make it writable before you go on"
        return f"{self.store.not_saved}; {kept}; {remedy}"

    def close(self) -> None:
        """Wait for the cache file being written, then close the store."""
        self.release_turn()
        if self.cache is not None:
            self.cache.close()
        self.store.close()
