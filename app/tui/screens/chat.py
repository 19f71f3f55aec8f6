"""The chat screen: conversation list, the conversation, the prompt box and the status line.

The screen turns keys into store calls and engine jobs and shows what comes back. Prompt
building and context fitting are plain functions (conversation.py) run in the engine's thread;
SQL stays in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Footer, Label
from textual.widgets.markdown import MarkdownStream

from llamadesk.app.chat.code_blocks import code_blocks
from llamadesk.app.chat.export import export_conversation
from llamadesk.app.chat.store import Conversation, ConversationDeleted, ConversationSettings, Store, StoredMessage
from llamadesk.app.chat.stored_chat import (
    GIVEN_TITLE_LENGTH,
    SAVE_INTERVAL_S,
    answered,
    given_title,
    title_from_prompt,
)
from llamadesk.app.chat.turn_lock import TurnLock, TurnLockNotOurs, TurnTaken, claim_turn
from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.core.paths import data_dir
from llamadesk.app.core.printable import printable
from llamadesk.app.engine.types import GenerationStats, LoadSettings, Sampling
from llamadesk.app.tui.engine_host import (
    EngineFailed,
    EngineHost,
    ModelLoaded,
    ModelLoading,
    ReplyDone,
    ReplyProgress,
    ReplyRequest,
    ReplyStarted,
)
from llamadesk.app.tui.frame_pacer import FramePacer
from llamadesk.app.tui.screens.adapter_picker import AdapterPickerScreen
from llamadesk.app.tui.screens.dialogs import ConfirmScreen, TextInputScreen
from llamadesk.app.tui.screens.mode_screen import ModeScreen
from llamadesk.app.tui.screens.model_picker import ModelPickerScreen
from llamadesk.app.tui.screens.settings import SettingsScreen
from llamadesk.app.tui.widgets.conversation_list import ConversationList
from llamadesk.app.tui.widgets.message_view import MessageView
from llamadesk.app.tui.widgets.prompt_box import PromptBox
from llamadesk.app.tui.widgets.status_bar import StatusBar, StatusFacts

# Only the newest messages are mounted: memory stays flat however long a conversation grows
# (the store and the exports keep all of it).
MAX_SHOWN_MESSAGES = 60
MODEL_LOAD_DELAY_S = 0.2
NARROW_WIDTH = 70
# How long a key bound here waits for the keys typed before it to be handled (see
# ChatScreen.keys_before_handled): only a UI stalled that long runs its action out of order.
KEYS_BEFORE_WAIT_S = 5.0
# The engine's errors advise the CLI's flags; a conversation has settings (F3, F10) for the same.
CLI_ADVICE_IN_CHAT = (
    (re.compile(r"use --ctx (\d+) or less"), r"set the context length (F3) to \1 or less"),
    (re.compile(r"a larger --ctx"), "a larger context length (F3)"),
    (re.compile(r"with --lora\b"), "with F10 (LoRA adapters)"),
)


def in_chat_words(error: str) -> str:
    """An engine error with its CLI advice put as what the chat screen offers."""
    for cli_advice, chat_advice in CLI_ADVICE_IN_CHAT:
        error = cli_advice.sub(chat_advice, error)
    return error


def sampling_for(settings: ConversationSettings) -> Sampling:
    return Sampling(
        temperature=settings.temperature,
        top_p=settings.top_p,
        repeat_penalty=settings.repeat_penalty,
        max_tokens=settings.max_tokens,
    )


def free_export_path(folder: Path, conversation_id: int, suffix: str) -> Path:
    """conversation-ID.SUFFIX in `folder`, or conversation-ID-2.SUFFIX, -3 … when that name is taken.

    An export is never replaced: ids come back after a delete (SQLite reuses the highest) and start
    again in a fresh store, so the file of that name may hold another conversation.
    """
    path, n = folder / f"conversation-{conversation_id}.{suffix}", 1
    while os.path.lexists(path):  # lexists: a dangling link counts as taken too
        n += 1
        path = folder / f"conversation-{conversation_id}-{n}.{suffix}"
    return path


class _Reply:
    """The reply being streamed: where it is stored and shown, and what came so far."""

    def __init__(self, reply_id: int, message: StoredMessage, view: MessageView, stream: MarkdownStream):
        self.reply_id = reply_id
        self.message = message
        self.view = view
        self.stream = stream
        self.parts: list[str] = []
        self.saved_at = time.monotonic()
        self.written_at = 0.0
        self.flush_pending = False
        self.spoken_ids: list[int] = []  # the ids of the messages the model was sent, in order

    @property
    def text(self) -> str:
        return "".join(self.parts)


class ChatScreen(ModeScreen):
    """Talk with a local model; every action has a key and a command-palette entry."""

    CSS_PATH = Path(__file__).with_name("chat.tcss")
    # Descriptions double as command-palette titles (see LlamadeskApp.get_system_commands).
    BINDINGS = [
        # Priority: the app runs it as the key comes, before the keys after it reach the prompt box.
        # Otherwise it bubbles up from the box a widget at a time while the box goes on, and a
        # prompt typed right after ctrl+n went into the old conversation, its reply then stopped.
        Binding("ctrl+n", "new_conversation", "New", priority=True),
        Binding("escape", "stop", "Stop reply", priority=True),
        # The same for these, whose actions also wait for the keys typed before them (see
        # keys_before_handled): typed after ctrl+l, text went into the box before the last prompt
        # replaced it; after F2, F3, F8 or ctrl+g, into the prompt box, not the dialog. No widget
        # here uses these keys, and a dialog on top gets them: a screen's priority keys are its
        # own only while it is the screen on top.
        Binding("ctrl+r", "regenerate", "Regenerate", priority=True),
        Binding("ctrl+l", "edit_last", "Edit last prompt", priority=True),
        Binding("ctrl+o", "copy_reply", "Copy reply"),
        Binding("ctrl+b", "copy_code", "Copy code block"),
        Binding("ctrl+f", "search", "Search conversations"),
        Binding("f2", "rename", "Rename", priority=True),
        Binding("f8", "delete", "Delete", priority=True),
        Binding("f3", "settings", "Conversation settings", priority=True),
        Binding("ctrl+g", "pick_model", "Pick model", priority=True),
        Binding("f10", "pick_adapters", "LoRA adapters", show=False),
        Binding("ctrl+s", "export", "Export to Markdown"),
        Binding("f9", "export_json", "Export to JSON", show=False),
        Binding("f4", "toggle_sidebar", "Conversation list", show=False),
    ]

    # Keys that belong to widgets, for the help screen.
    WIDGET_KEYS = (
        ("enter", "Send the prompt"),
        ("ctrl+j", "New line in the prompt"),
        ("tab", "Move between the list, messages and prompt"),
        ("c (message)", "Copy the focused message"),
        ("b (message)", "Copy the focused message's code block"),
        ("ctrl+p", "Command palette"),
    )

    def __init__(
        self,
        store: Store,
        host: EngineHost,
        defaults: ConversationSettings,
        load_defaults: LoadSettings = LoadSettings(),
    ) -> None:
        super().__init__()
        self.load_defaults = load_defaults
        self.store = store
        self.host = host
        self.defaults = defaults
        self.conversation: Conversation | None = None
        self.messages: list[StoredMessage] = []
        # The views on screen by message id. Kept here, not read back from the container: a removed
        # view stays among its children until Textual has pruned it, and counting it hid one more.
        self._shown: dict[int, MessageView] = {}
        self.reply: _Reply | None = None
        # The open conversation's turn, held from storing a question until its reply is stored,
        # so that another llamadesk (`chat --continue`) cannot take one there meanwhile.
        self._turn: TurnLock | None = None
        self.memory_start = 0
        self.facts = StatusFacts()
        self.last_stats: GenerationStats | None = None
        self.stopped_reply_id: int | None = None
        self.loading_spec: str | None = None  # the model being loaded, until it is (or fails)
        # Streamed text is drawn as often as the UI can afford (see FramePacer); text that comes
        # between draws waits in the host's buffer.
        self.pacer = FramePacer()

    # -- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield ConversationList(id="sidebar")
            with Vertical(id="chat"):
                yield Label("", id="earlier")
                yield VerticalScroll(id="messages")
                yield PromptBox(id="prompt", placeholder="Ask anything · Enter sends · ctrl+j new line")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#messages", VerticalScroll).anchor()
        self.refresh_list()
        self.show_conversation(None)
        self.query_one(PromptBox).focus()
        # Once the first frame is out: the engine's thread imports llama.cpp, holding the GIL for a
        # few hundred milliseconds, which would otherwise hold back the first paint.
        self.set_timer(MODEL_LOAD_DELAY_S, lambda: self.host.load(self.settings.model, self.load_settings, self))

    def on_resize(self) -> None:
        narrow = self.size.width < NARROW_WIDTH
        self.set_class(narrow, "narrow")
        if narrow and not self._focus_in_list():
            # A narrow terminal shows the list instead of the chat: a list brought up while the
            # terminal was wide would otherwise hide the prompt the user is typing in.
            self.remove_class("sidebar-shown")

    def _focus_in_list(self) -> bool:
        return self.focused is not None and self.query_one("#sidebar") in self.focused.ancestors_with_self

    def _show_list(self, shown: bool) -> None:
        """Show or hide the conversation list; in a narrow terminal it takes the chat's place."""
        self.set_class(not shown, "sidebar-hidden")
        self.set_class(shown, "sidebar-shown")

    def _back_to_prompt(self) -> None:
        if self.has_class("narrow"):
            self._show_list(False)
        # At once, not as focus() does it (later, by message): keys already typed go where the focus is.
        self.set_focus(self.query_one(PromptBox))

    @property
    def settings(self) -> ConversationSettings:
        return self.conversation.settings if self.conversation else self.defaults

    @property
    def load_settings(self) -> LoadSettings:
        return replace(
            self.load_defaults,
            n_ctx=self.settings.context_length or self.load_defaults.n_ctx,
            lora=self.settings.adapters,
        )

    def show_status(self, **changes) -> None:
        self.facts = replace(self.facts, **changes)
        self.query_one(StatusBar).show(self.facts)

    # -- the conversation list --------------------------------------------------------------

    def refresh_list(self, search: str | None = None) -> None:
        if search is None:
            search = self.query_one("#search").value
        current = self.conversation.id if self.conversation else None
        self.query_one(ConversationList).show(self.store.conversations(search), current)

    @on(ConversationList.SearchChanged)
    def _search(self, event: ConversationList.SearchChanged) -> None:
        self.refresh_list(event.text)

    @on(ConversationList.Chosen)
    def _chosen(self, event: ConversationList.Chosen) -> None:
        self.open_conversation(event.conversation_id)
        self._back_to_prompt()

    def open_conversation(self, conversation_id: int | None) -> None:
        """Show a stored conversation (None: a new, empty one) and load its model."""
        self._finish_reply_now()
        self.show_conversation(self.store.conversation(conversation_id) if conversation_id is not None else None)
        self.host.load(self.settings.model, self.load_settings, self)

    def show_conversation(self, conversation: Conversation | None) -> None:
        self.conversation = conversation
        self.messages = self.store.messages(conversation.id) if conversation else []
        # Where the latest reply's memory began: a long conversation reads the window its prompt
        # cache holds again (from the first message, it dropped turns anew and read it all).
        start_id = conversation.memory_start_id if conversation else None
        self.memory_start = next((i for i, m in enumerate(self.messages) if m.id == start_id), 0)
        self.query_one("#messages", VerticalScroll).remove_children()
        self._shown = {}
        self._show_newest()
        self._mark_memory()
        # The last reply's speed and "stopped" were another conversation's; a load in progress is not.
        self.show_status(
            memory_start=self.memory_start,
            context_tokens=0,
            cached_tokens=0,
            cache_from_disk=False,
            tokens_per_second=None,
            time_to_first_token=None,
            activity=self.facts.activity if self.loading_spec is not None else "",
        )
        self.sub_title = conversation.title if conversation else "New conversation"
        for _, problem in conversation.setting_problems if conversation else ():
            # A damaged or hand-edited row: the default is used, as for a bad config.json value.
            self.notify(f"this conversation's stored {problem}; the default is used", severity="warning", markup=False)

    def _show_earlier_note(self) -> None:
        hidden = max(0, len(self.messages) - MAX_SHOWN_MESSAGES)
        note = self.query_one("#earlier", Label)
        note.update(f"{hidden} earlier messages are saved; export (ctrl+s) to read them all" if hidden else "")
        note.display = hidden > 0

    def _new_view(self, message: StoredMessage, streaming: bool = False) -> MessageView:
        view = MessageView(message.role, message.content, message.state == "interrupted" and not streaming, message.id)
        self._shown[message.id] = view
        return view

    def _show_newest(self) -> None:
        """Show exactly the newest MAX_SHOWN_MESSAGES messages and say how many are saved above them."""
        window = self.messages[-MAX_SHOWN_MESSAGES:]
        in_window = {m.id for m in window}
        for message_id in [i for i in self._shown if i not in in_window]:
            self._shown.pop(message_id).remove()
        # The messages above the first one shown go on top: all of them in a conversation just
        # opened, and those that come back into view when ctrl+r or ctrl+l took the newest away.
        first = next((self._shown[m.id] for m in window if m.id in self._shown), None)
        above = [self._new_view(m) for m in itertools.takewhile(lambda m: m.id not in self._shown, window)]
        if above:
            self.query_one("#messages", VerticalScroll).mount_all(above, before=first)
        self._show_earlier_note()

    def _mount_message(self, message: StoredMessage, streaming: bool = False) -> MessageView:
        self.messages.append(message)
        view = self._new_view(message, streaming)
        self.query_one("#messages", VerticalScroll).mount(view)
        self._show_newest()
        return view

    def _remove_last_message(self) -> StoredMessage:
        """Delete the newest message; the caller then calls _show_newest (once, after all its changes)."""
        message = self.messages.pop()
        self.store.delete_message(message.id)
        view = self._shown.pop(message.id, None)
        if view is not None:
            view.remove()
        return message

    def _mark_memory(self) -> None:
        """Dim what the model no longer sees; mark where its memory begins."""
        start_id = self.messages[self.memory_start].id if 0 < self.memory_start < len(self.messages) else None
        forgotten = {m.id for m in self.messages[: self.memory_start]}
        for view in self._shown.values():
            view.set_memory(view.message_id in forgotten, view.message_id == start_id)

    # -- sending and streaming --------------------------------------------------------------

    @on(PromptBox.Submitted)
    def _submitted(self, event: PromptBox.Submitted) -> None:
        if self.reply is not None:
            self.notify("A reply is still streaming: Esc stops it", severity="warning")
            return
        event.prompt_box.clear()
        self.send(event.text.strip())

    def send(self, text: str) -> None:
        """Store the prompt and ask for a reply."""
        if self.conversation is None:
            self.conversation = self.store.new_conversation(title_from_prompt(text), self.defaults)
            self.sub_title = self.conversation.title
            self.refresh_list()
        if not self._claim_turn():
            self._give_back(text)
            return
        try:
            self._mount_message(self.store.add_message(self.conversation.id, "user", text))
        except ConversationDeleted as err:
            self._conversation_gone(err, text)
            return
        self.start_reply()

    def _conversation_gone(self, err: ConversationDeleted, unsent: str = "") -> None:
        """The open conversation was deleted in another window: say so, start a new one, and give the
        prompt that could not be stored back to the box, to send again there."""
        self.notify(f"{err}; a new conversation is started", severity="warning", timeout=10, markup=False)
        self._release_turn()
        if self.conversation is not None:
            self.host.forget_conversation(self.conversation.id)
        self.show_conversation(None)
        self.refresh_list()
        if unsent:
            self._give_back(unsent)

    def _give_back(self, unsent: str) -> None:
        """Put a prompt that was not sent back in the box, to send again."""
        box = self.query_one(PromptBox)
        box.text = unsent
        box.move_cursor(box.document.end)

    def _claim_turn(self) -> bool:
        """Hold the open conversation's turn for a reply; False, said in a notice, when another
        llamadesk is taking one there. Messages stored since they were shown here (the CLI went
        on with this conversation meanwhile) are shown first, so the reply answers what is stored."""
        if self.conversation is None or self._turn is not None:
            return True
        try:
            self._turn = claim_turn(self.store, self.conversation.id)
        except TurnTaken as err:
            self.notify(str(err), severity="warning", timeout=10, markup=False)
            return False
        with contextlib.suppress(LlamadeskError):  # deleted outright: storing the question says so
            if self.store.conversation(self.conversation.id).created != self.conversation.created:
                # Deleted here and its id given to a conversation started since (SQLite reuses the
                # highest id): the question went into that other conversation, and its reply read it.
                self._conversation_gone(
                    ConversationDeleted(
                        f"conversation {self.conversation.id} was deleted elsewhere (in another window or "
                        "program); this message was not saved"
                    )
                )
                return False
        if self.store.messages(self.conversation.id) != self.messages:
            # Deleted meanwhile: storing the question says so (ConversationDeleted), as before.
            with contextlib.suppress(LlamadeskError):
                self.show_conversation(self.store.conversation(self.conversation.id))
                self.notify("this conversation went on in another llamadesk: its new messages are shown")
        return True

    def _release_turn(self) -> None:
        if self._turn is not None:
            self._turn.release()
            self._turn = None

    def spoken(self) -> list[StoredMessage]:
        """The messages the model should see: the answered ones (stored_chat.answered) and the
        question being asked, the last message."""
        return [*answered(self.messages[:-1]), self.messages[-1]] if self.messages else []

    def start_reply(self) -> None:
        assert self.conversation is not None
        if not self._claim_turn():
            return
        spoken = self.spoken()
        forgotten = {m.id for m in self.messages[: self.memory_start]}
        request = ReplyRequest(
            model=self.settings.model,
            load=self.load_settings,
            system_prompt=self.settings.system_prompt,
            turns=tuple({"role": m.role, "content": m.content} for m in spoken),
            sampling=sampling_for(self.settings),
            # fit_context counts in spoken messages; self.memory_start counts all of them.
            keep_from=sum(1 for m in spoken if m.id in forgotten),
            conversation_id=self.conversation.id,
        )
        # Stored at once as "interrupted": if the app dies mid-reply, that is what it was.
        try:
            message = self.store.add_message(self.conversation.id, "assistant", "", "interrupted")
        except ConversationDeleted as err:
            self._conversation_gone(err)
            return
        view = self._mount_message(message, streaming=True)
        reply_id = self.host.reply(request, self)
        self.reply = _Reply(reply_id, message, view, view.stream())
        self.reply.spoken_ids = [m.id for m in spoken]
        self.show_status(activity="replying")

    def _current(self, reply_id: int) -> _Reply | None:
        return self.reply if self.reply is not None and self.reply.reply_id == reply_id else None

    @on(ReplyStarted)
    def _reply_started(self, event: ReplyStarted) -> None:
        if self._current(event.reply_id) is None:
            return
        reply = self.reply
        start = event.fitted.memory_start
        start_id = reply.spoken_ids[start] if start < len(reply.spoken_ids) else None
        self.memory_start = next((i for i, m in enumerate(self.messages) if m.id == start_id), 0)
        self._mark_memory()
        if self.conversation is not None:
            self.store.set_memory_start(self.conversation.id, start_id if self.memory_start else None)
        if event.fitted.cut_note is not None:
            self.notify(event.fitted.cut_note.replace("--ctx", "context (settings)"), severity="warning", timeout=10)
        self.show_status(
            context_tokens=event.fitted.prompt_tokens,
            n_ctx=event.n_ctx,
            memory_start=self.memory_start,
            cached_tokens=event.restored_tokens,
            cache_from_disk=event.restored_tokens > 0,
        )

    @on(ReplyProgress)
    def _reply_progress(self, event: ReplyProgress) -> None:
        reply = self._current(event.reply_id)
        if reply is None or reply.flush_pending:
            return
        # One Markdown update per paced frame: text that arrives meanwhile waits in the host's
        # buffer (it posts nothing more until we take it), so a fast model costs the UI no more.
        interval = self.pacer.observe(time.thread_time(), time.monotonic())
        wait = reply.written_at + interval - time.monotonic()
        reply.flush_pending = True
        if wait > 0:
            self.set_timer(wait, partial(self._flush_reply, reply))
        else:
            self.call_next(self._flush_reply, reply)

    async def _flush_reply(self, reply: _Reply) -> None:
        reply.flush_pending = False
        if self.reply is not reply:
            return
        text = self.host.take_text()
        if not text:
            return
        reply.parts.append(text)
        reply.written_at = time.monotonic()
        await reply.stream.write(text)
        if reply.written_at - reply.saved_at >= SAVE_INTERVAL_S:
            reply.message = self.store.update_message(reply.message, reply.text, "interrupted")
            reply.saved_at = time.monotonic()
            if not self.store.has_message(reply.message.id):  # deleted elsewhere: stop, and say so
                self._finish_reply_now()

    @on(ReplyDone)
    async def _reply_done(self, event: ReplyDone) -> None:
        reply = self._current(event.reply_id)
        if reply is None and event.reply_id != self.stopped_reply_id:
            return
        stats = self.last_stats = event.stats
        self.show_status(
            activity="replying" if self.reply is not None and reply is None else "stopped" if event.stopped else "",
            tokens_per_second=stats.generated_tokens_per_second,
            time_to_first_token=stats.time_to_first_token,
            context_tokens=stats.context_tokens,
            n_ctx=stats.n_ctx,
            cached_tokens=stats.cached_prompt_tokens,
        )
        if reply is not None:
            # The worker's text is complete even if a progress message was still unread.
            await self._finish_reply(reply, event.text, interrupted=event.stopped)

    def _settle_reply(self, reply: _Reply, text: str, interrupted: bool) -> None:
        """Save the reply as it ended and label it; at once, so nothing sees it half-finished."""
        self.reply = None
        self.pacer.pause()
        try:
            stored = self.store.update_message(reply.message, text, "interrupted" if interrupted else "complete")
            if not self.store.has_message(stored.id):
                # Its conversation was deleted in another window meanwhile: the reply stays on screen
                # (to copy), and the next prompt starts a new conversation (_conversation_gone).
                self.notify(
                    f"conversation {reply.message.conversation_id} was deleted elsewhere (in another window "
                    "or program); this reply was not saved",
                    severity="warning",
                    timeout=10,
                    markup=False,
                )
        finally:
            self._release_turn()  # the reply's end is stored: another llamadesk may take a turn
        self.messages = [stored if m.id == stored.id else m for m in self.messages]
        reply.view.content = text
        reply.view.set_interrupted(interrupted)

    async def _render_final(self, reply: _Reply, text: str) -> None:
        await reply.stream.stop()
        # One full render when the stream ends: streaming appends leave fences half-styled.
        if reply.view.is_attached:
            await reply.view.show(text)

    async def _finish_reply(self, reply: _Reply, text: str, interrupted: bool) -> None:
        self._settle_reply(reply, text, interrupted)
        await self._render_final(reply, text)

    def _finish_reply_now(self) -> None:
        """Stop the reply and keep what is on screen (Esc, or leaving the conversation)."""
        reply = self.reply
        if reply is None:
            return
        self.host.stop()
        self.stopped_reply_id = reply.reply_id  # its stats still come, and still count
        self._settle_reply(reply, reply.text, interrupted=True)
        self.run_worker(self._render_final(reply, reply.text))
        self.show_status(activity="stopped")

    # -- actions ----------------------------------------------------------------------------

    def action_stop(self) -> None:
        """Esc: stop the reply at once, keeping what came."""
        if self.reply is not None:
            self._finish_reply_now()
        elif self._focus_in_list():
            self._back_to_prompt()

    def action_new_conversation(self) -> None:
        self.open_conversation(None)
        self._back_to_prompt()

    async def keys_before_handled(self) -> None:
        """Return once the keys typed before the one being handled have had their effect here.

        A priority binding's action runs in the app's task as its key comes, and the keys typed
        after it wait in the app's queue until it returns. The keys typed before it may still be in
        the focused widget's queue, and what they send up (the prompt box's Submitted) on its way to
        this screen: run at once, ctrl+l took back the prompt before, and Enter then sent it joined
        to the text typed before ctrl+l.
        """
        handled = asyncio.Event()
        self._after_queued(self.focused or self, handled)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(handled.wait(), KEYS_BEFORE_WAIT_S)

    def _after_queued(self, node: Widget, handled: asyncio.Event) -> None:
        """Set `handled` once `node`, then each node above it up to this screen, has handled what it
        has queued. Twice at each: a node handling a key may queue a message on itself (Submitted)
        that goes up only when the node handles it."""

        def up() -> None:
            if node is self or node.parent is None:
                handled.set()
            else:
                self._after_queued(node.parent, handled)

        def behind_its_own() -> None:
            if not node.call_later(up):
                up()

        if not node.call_later(behind_its_own):
            up()  # a node that closed holds nothing more

    async def action_regenerate(self) -> None:
        """Replace the last reply with a new one."""
        await self.keys_before_handled()
        if self.reply is not None or not self.messages or self.conversation is None:
            return
        if not self._claim_turn():  # before the last reply goes: that is part of the turn
            return
        if self.messages and self.messages[-1].role == "assistant":
            self._remove_last_message()
        if self.messages and self.messages[-1].role == "user":
            self.start_reply()
        else:
            self._release_turn()
        self._show_newest()

    async def action_edit_last(self) -> None:
        """Take the last prompt back into the prompt box (its reply goes), to edit and send again."""
        await self.keys_before_handled()
        if self.reply is not None or self.conversation is None:
            return
        shown = [m.id for m in self.messages]
        # Under the conversation's turn, as regenerate and delete: without it, ctrl+l deleted a turn
        # from the middle of a conversation another llamadesk was replying in.
        if not self._claim_turn():
            return
        try:
            if [m.id for m in self.messages] != shown:
                return  # it went on elsewhere: its new messages are shown (and said), nothing taken back
            while self.messages and self.messages[-1].role == "assistant":
                self._remove_last_message()
            if not self.messages:
                self._show_newest()
                return
            prompt = self._remove_last_message()
        finally:
            self._release_turn()
        self._show_newest()
        box = self.query_one(PromptBox)
        box.text = prompt.content
        box.move_cursor(box.document.end)
        box.focus()

    def _last_reply(self) -> StoredMessage | None:
        return next((m for m in reversed(self.messages) if m.role == "assistant" and m.content), None)

    def action_copy_reply(self) -> None:
        reply = self._last_reply()
        if reply is None:
            self.notify("No reply to copy yet", severity="warning")
            return
        self.app.copy_to_clipboard(reply.content)
        self.notify("Reply copied")

    def action_copy_code(self) -> None:
        blocks = [block for m in self.messages if m.role == "assistant" for block in code_blocks(m.content)]
        if not blocks:
            self.notify("No code block in this conversation", severity="warning")
            return
        self.app.copy_to_clipboard(blocks[-1])
        self.notify("Code block copied")

    def action_search(self) -> None:
        self._show_list(True)
        self.query_one(ConversationList).focus_search()

    def action_toggle_sidebar(self) -> None:
        shown = not self.query_one("#sidebar").display
        if not self.has_class("narrow"):
            self._show_list(shown)
        elif shown:
            self.action_search()  # the chat is hidden now: the focus goes where the user can see it
        else:
            self._back_to_prompt()

    async def action_rename(self) -> None:
        await self.keys_before_handled()
        conversation = self.conversation
        if conversation is None:
            self.notify("Send a prompt first: a new conversation has no title yet", severity="warning")
            return

        def renamed(answer: str | None) -> None:
            # The dialog already took one line of at most GIVEN_TITLE_LENGTH characters, control
            # characters shown; given_title makes sure of it, as title_from_prompt does for a prompt.
            title = given_title(answer or "")
            if title:
                self.store.rename(conversation.id, title)
                self.conversation = replace(conversation, title=title)
                self.sub_title = title
                self.refresh_list()

        question = f"New title (at most {GIVEN_TITLE_LENGTH} characters)"
        dialog = TextInputScreen(question, printable(conversation.title), max_length=GIVEN_TITLE_LENGTH)
        # Awaited, as the other dialogs: once it is mounted, its field has the focus, and the keys
        # typed after F2 (held until this returns) go there.
        await self.app.push_screen(dialog, renamed)

    async def action_delete(self) -> None:
        await self.keys_before_handled()
        conversation = self.conversation
        if conversation is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._finish_reply_now()
                try:  # not while another window or `chat --continue` replies there: its reply would be lost
                    turn = claim_turn(self.store, conversation.id)
                except TurnTaken as err:
                    said = (
                        str(err)  # something not llamadesk's in the lock's place: its own line says what to do
                        if isinstance(err, TurnLockNotOurs)
                        else f"“{title}” is replying in another llamadesk; stop it there or let it finish, then delete"
                    )
                    self.notify(said, severity="warning", timeout=10, markup=False)
                    return
                try:
                    self.store.delete(conversation.id)
                finally:
                    turn.release()
                self.host.forget_conversation(conversation.id)
                self.show_conversation(None)
                self.refresh_list()
                self.notify(f"Deleted “{title}”", markup=False)

        title = printable(conversation.title)  # the user's text: no markup, no control characters
        await self.app.push_screen(ConfirmScreen(f"Delete “{title}” and all its messages?"), confirmed)

    def apply_settings(self, settings: ConversationSettings) -> None:
        """Settings for this conversation (or the next new one); the model reloads if they need it."""
        if self.conversation is None:
            self.defaults = settings
        else:
            self.store.update_settings(self.conversation.id, settings)
            self.conversation = replace(self.conversation, settings=settings)
        self.host.load(settings.model, self.load_settings, self)

    async def action_settings(self) -> None:
        await self.keys_before_handled()

        def saved(settings: ConversationSettings | None) -> None:
            if settings is not None:  # the form does not show adapters: they stay as they were
                self.apply_settings(replace(settings, adapters=self.settings.adapters))

        await self.app.push_screen(SettingsScreen(self.settings), saved)

    async def action_pick_model(self) -> None:
        await self.keys_before_handled()

        def picked(model: str | None) -> None:
            if model is not None and model != self.settings.model:
                self.apply_settings(replace(self.settings, model=model))

        await self.app.push_screen(ModelPickerScreen(self.settings.model), picked)

    def action_pick_adapters(self) -> None:
        def picked(adapters: tuple[tuple[str, float], ...] | None) -> None:
            if adapters is not None and adapters != self.settings.adapters:
                self.apply_settings(replace(self.settings, adapters=adapters))

        self.app.push_screen(AdapterPickerScreen(self.settings.adapters), picked)

    def action_export(self, suffix: str = "md") -> None:
        if self.conversation is None:
            self.notify("Nothing to export yet", severity="warning")
            return
        folder = data_dir() / "exports"
        try:
            # Inside the try: a file where the folder should be is a failed export, not a crash.
            if folder.exists() and not folder.is_dir():
                raise LlamadeskError(f"{folder} is a file, where exports go in a folder; move it away")
            folder.mkdir(exist_ok=True)
            path = free_export_path(folder, self.conversation.id, suffix)
            export_conversation(self.conversation, self.store.messages(self.conversation.id), path)
        except LlamadeskError as err:
            self.notify(f"Export failed: {err}", severity="error", markup=False)
            return
        except OSError as err:
            self.notify(
                f"Export failed: {folder} cannot be written ({err.strerror or err}); free some space or fix its "
                "permissions",
                severity="error",
                markup=False,
            )
            return
        self.notify(f"Exported to {path}", markup=False)

    def action_export_json(self) -> None:
        self.action_export("json")

    # -- the engine's news ------------------------------------------------------------------

    @on(ModelLoading)
    def _loading(self, event: ModelLoading) -> None:
        self.loading_spec = event.spec
        self.show_status(activity=f"loading {event.spec}…")

    @on(ModelLoaded)
    def _loaded(self, event: ModelLoaded) -> None:
        self.loading_spec = None
        info = event.info
        self.show_status(
            activity="replying" if self.reply else "",
            model=Path(info.spec).stem,
            adapters=tuple(Path(path).stem for path, _ in self.settings.adapters),
            backend=info.backend,
            threads=info.n_threads,
            n_ctx=info.n_ctx,
        )

    @on(EngineFailed)
    async def _failed(self, event: EngineFailed) -> None:
        self.notify(in_chat_words(event.error), severity="error", timeout=10, markup=False)
        if self.reply is not None and self.reply.text:
            await self._finish_reply(self.reply, self.reply.text, interrupted=True)
        elif self.reply is not None:
            await self._drop_reply(self.reply)
        if self.loading_spec is not None:
            # The host closed the old model before trying this one: nothing is loaded now.
            not_loaded = f"{Path(self.loading_spec).stem} (not loaded)"
            self.show_status(model=not_loaded, adapters=(), backend=None, threads=None, n_ctx=None)
            self.loading_spec = None
        self.show_status(activity="")

    async def _drop_reply(self, reply: _Reply) -> None:
        """Take back a reply that never got a word (its model failed): an empty "interrupted"
        reply would say the model was stopped, and stay in the conversation for nothing."""
        self.reply = None
        self.pacer.pause()
        await reply.stream.stop()
        try:
            self.store.delete_message(reply.message.id)
        finally:
            self._release_turn()
        self.messages = [m for m in self.messages if m.id != reply.message.id]
        view = self._shown.pop(reply.message.id, None)
        if view is not None:
            await view.remove()
        self._show_newest()
