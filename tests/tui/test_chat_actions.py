"""Every chat-screen action driven through Pilot, with a fake engine for speed and a real SQLite store."""

from __future__ import annotations

import pytest
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from llamadesk.app.chat.store import Store
from llamadesk.app.settings.user_config import Config, load_config
from llamadesk.app.tui.app import LlamadeskApp
from llamadesk.app.tui.screens import chat as chat_module
from llamadesk.app.tui.screens.chat import ChatScreen
from llamadesk.app.tui.screens.dialogs import ConfirmScreen, TextInputScreen
from llamadesk.app.tui.screens.help import HelpScreen
from llamadesk.app.tui.screens.model_picker import ModelPickerScreen
from llamadesk.app.tui.screens.settings import SettingsScreen
from llamadesk.app.tui.widgets.message_view import MEMORY_START_TITLE, MessageView
from llamadesk.app.tui.widgets.prompt_box import PromptBox
from llamadesk.app.tui.widgets.status_bar import StatusBar
from tests.tui.chat_pilot import ask, texts
from tests.tui.fake_engine import CODE_REPLY, FakeLoader
from tests.tui.waiting import wait_until

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]


def make_app(store, loader=None, config=None, save_settings=False) -> LlamadeskApp:
    return LlamadeskApp(
        store=store, config=config or Config(), engine_loader=loader or FakeLoader(), save_settings=save_settings
    )


async def test_enter_sends_and_the_reply_streams_into_the_store_and_the_status(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "hello")
        assert texts(screen) == [("user", "hello", "complete"), ("assistant", "Echo: hello", "complete")]
        conversation = store.conversations()[0]
        assert conversation.title == "hello"
        assert [(m.role, m.content, m.state) for m in store.messages(conversation.id)] == texts(screen)
        views = screen.query(MessageView)
        assert [v.content for v in views] == ["hello", "Echo: hello"]
        status = str(screen.query_one(StatusBar).render())
        assert "100.0 tok/s" in status and "TTFT 50 ms" in status and "CPU ×2" in status
        assert "▱" in status and "/512" in status  # the context gauge


async def test_ctrl_j_adds_a_line_instead_of_sending(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        box = app.screen.query_one(PromptBox)
        await pilot.press("a", "ctrl+j", "b")
        assert box.text == "a\nb"
        assert app.screen.messages == []
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(app.screen.messages) == 2 and app.screen.reply is None)
        assert app.screen.messages[0].content == "a\nb"
        assert box.text == ""


async def long_reply_partly_saved(pilot, store) -> ChatScreen:
    """Start a long reply and return once what came of it so far is saved (marked interrupted)."""
    screen = await ask(pilot, "tell a long story", wait=False)
    reply_id = screen.reply.message.id
    await wait_until(
        pilot, lambda: any(m.id == reply_id and m.content for m in store.messages(1)), what="a partial save"
    )
    return screen


async def test_escape_stops_at_once_and_keeps_what_came_marked_interrupted(store, monkeypatch):
    monkeypatch.setattr(chat_module, "SAVE_INTERVAL_S", 0.05)
    loader = FakeLoader(token_delay=0.002)
    app = make_app(store, loader)
    async with app.run_test(size=(80, 24)) as pilot:
        # While it streams, what came so far is already saved (marked interrupted) for a crash.
        screen = await long_reply_partly_saved(pilot, store)
        await pilot.press("escape")
        assert screen.reply is None  # stopped at once, not after the model finished
        await wait_until(pilot, lambda: screen.messages[-1].state == "interrupted" and screen.messages[-1].content)
        kept = screen.messages[-1].content
        assert kept.startswith("word0 word1")
        await wait_until(pilot, lambda: loader.engines[0]._stop.is_set(), what="the engine to be told to stop")
        # The stopped reply's speed still reaches the status line when the engine reports it.
        await wait_until(pilot, lambda: screen.last_stats is not None and screen.last_stats.stop_reason == "stopped")
        assert "stopped" in str(screen.query_one(StatusBar).render())
        stored = store.messages(1)[-1]
        assert (stored.state, stored.content) == ("interrupted", kept)
        view = list(screen.query(MessageView))[-1]
        assert "interrupted" in str(view._label.render())
        # A new prompt works after a stop.
        await ask(pilot, "hi")
        assert screen.messages[-1].content == "Echo: hi"


async def test_regenerate_replaces_the_last_reply(store):
    loader = FakeLoader()
    app = make_app(store, loader)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "hello")
        first_reply = screen.messages[-1].created
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.messages[-1].created != first_reply and screen.reply is None)
        assert texts(screen) == [("user", "hello", "complete"), ("assistant", "Echo: hello", "complete")]
        assert len(store.messages(1)) == 2
        assert len(loader.engines[0].prompts) == 2
        assert loader.engines[0].prompts[1][-1] == {"role": "user", "content": "hello"}


async def test_edit_last_prompt_takes_it_back_into_the_box_to_resend(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "helo")
        await pilot.press("ctrl+l")
        box = screen.query_one(PromptBox)
        assert box.text == "helo" and box.has_focus
        assert screen.messages == [] and store.messages(1) == []
        await pilot.press("left", "l")
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(screen.messages) == 2 and screen.reply is None)
        assert texts(screen)[-1] == ("assistant", "Echo: hello", "complete")


async def test_copy_the_last_reply_and_its_code_block(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await ask(pilot, "show me code")
        await pilot.press("ctrl+o")
        assert app.clipboard == CODE_REPLY
        await pilot.press("ctrl+b")
        assert app.clipboard == "print('hello')\n"
        # A focused message copies itself: c for the message, b for its code block.
        view = list(app.screen.query(MessageView))[0]
        view.focus()
        await pilot.press("c")
        assert app.clipboard == "show me code"


async def test_new_rename_search_open_and_delete_with_confirmation(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "first question")
        await pilot.press("ctrl+n")
        assert screen.conversation is None and not screen.query(MessageView)
        await ask(pilot, "second question")
        # Rename
        await pilot.press("f2")
        assert isinstance(app.screen, TextInputScreen)
        await pilot.press("ctrl+u", *"Renamed chat", "enter")
        assert [c.title for c in store.conversations()] == ["Renamed chat", "first question"]
        # Search by title, Enter opens the best match
        await pilot.press("ctrl+f", *"first")
        await wait_until(pilot, lambda: screen.query_one("#conversations").option_count == 2)
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: screen.conversation is not None and screen.conversation.title == "first question"
        )
        assert [v.content for v in screen.query(MessageView)] == ["first question", "Echo: first question"]
        # Delete: 'n' keeps it, 'y' deletes it
        await pilot.press("f8")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert len(store.conversations()) == 2
        await pilot.press("f8")
        await pilot.press("y")
        assert [c.title for c in store.conversations()] == ["Renamed chat"]
        assert screen.conversation is None


async def test_a_conversation_deleted_in_another_window_is_said_and_the_prompt_kept(store):
    app = make_app(store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ask(pilot, "first question")
        other = Store(store.path)  # the second window deletes the conversation open here
        other.delete(screen.conversation.id)
        other.close()
        box = screen.query_one(PromptBox)
        box.focus()
        box.text = "second question"
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.conversation is None, what="the deleted conversation to close")
        assert app.is_running and screen.reply is None and not screen.query(MessageView)
        assert box.text == "second question"
        notices = [n.message for n in app._notifications]
        assert any("was deleted elsewhere" in n for n in notices), notices
        await pilot.press("enter")  # sent again: into a new conversation
        await wait_until(pilot, lambda: screen.reply is None and len(screen.messages) == 2, what="the reply")
        assert [c.title for c in store.conversations()] == ["second question"]


async def test_a_reply_whose_conversation_is_deleted_elsewhere_stops_and_says_it_was_not_saved(store, monkeypatch):
    # The reply streamed on and ended as if saved; neither it nor its question was in the store.
    monkeypatch.setattr(chat_module, "SAVE_INTERVAL_S", 0.05)
    loader = FakeLoader(token_delay=0.002)
    app = make_app(store, loader)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await long_reply_partly_saved(pilot, store)
        other = Store(store.path)
        other.delete(screen.conversation.id)
        other.close()
        await wait_until(pilot, lambda: screen.reply is None, what="the reply to stop")
        await wait_until(pilot, lambda: loader.engines[0]._stop.is_set(), what="the engine to be told to stop")
        notices = [n.message for n in app._notifications]
        assert any("was deleted elsewhere" in n and "this reply was not saved" in n for n in notices), notices
        assert store.conversations() == []


async def test_a_conversation_replying_in_another_llamadesk_is_not_deleted_under_it(store):
    from llamadesk.app.chat.turn_lock import claim_turn

    app = make_app(store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ask(pilot, "first question")
        conversation_id = screen.conversation.id
        other = Store(store.path)  # `chat --continue` or another window, mid-reply
        held = claim_turn(other, conversation_id)
        try:
            await pilot.press("f8")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await pilot.pause()
            notices = [n.message for n in app._notifications]
            assert any("is replying in another llamadesk" in n for n in notices), notices
            assert [c.id for c in store.conversations()] == [conversation_id]
        finally:
            held.release()
            other.close()
        await pilot.press("f8")  # its turn is over: deleted
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: store.conversations() == [], what="the deletion")


async def test_a_conversation_deleted_elsewhere_whose_id_was_given_again_is_not_written_into(store):
    # SQLite gives a deleted conversation's id to the next one: the question went into that other
    # conversation, and the reply read its messages.
    app = make_app(store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ask(pilot, "about the owl")
        owl = screen.conversation.id
        other = Store(store.path)
        other.delete(owl)
        cherries = other.new_conversation("Cherries are red", screen.conversation.settings)
        other.add_message(cherries.id, "user", "Cherries are red")
        other.close()
        assert cherries.id == owl  # the id is the same; the conversation is not
        box = screen.query_one(PromptBox)
        box.text = "What did I say about the owl?"
        await pilot.press("enter")
        await pilot.pause()
        assert [m.content for m in store.messages(owl)] == ["Cherries are red"]
        assert any("was deleted elsewhere" in n.message for n in app._notifications)
        assert box.text == "What did I say about the owl?" and screen.conversation is None


async def test_editing_the_last_prompt_waits_for_a_turn_another_llamadesk_is_taking(store):
    # ctrl+l took no turn: it deleted the last question and reply from the middle of a
    # conversation another window was replying in.
    from llamadesk.app.chat.turn_lock import claim_turn

    app = make_app(store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ask(pilot, "first question")
        conversation_id = screen.conversation.id
        other = Store(store.path)
        held = claim_turn(other, conversation_id)
        try:
            await pilot.press("ctrl+l")
            await pilot.pause()
            assert len(store.messages(conversation_id)) == 2 and len(screen.messages) == 2
            assert any("another llamadesk" in n.message for n in app._notifications)
            # Meanwhile the other window adds a turn: once its turn is over, ctrl+l shows it and takes nothing back.
            other.add_message(conversation_id, "user", "second question")
            other.add_message(conversation_id, "assistant", "second reply")
        finally:
            held.release()
            other.close()
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert [m.content for m in screen.messages][-1] == "second reply"
        assert len(store.messages(conversation_id)) == 4
        await pilot.press("ctrl+l")  # now it is what it shows: the last prompt comes back to edit
        await pilot.pause()
        assert len(store.messages(conversation_id)) == 2
        assert screen.query_one(PromptBox).text == "second question"


async def test_a_link_in_the_turn_lock_s_place_is_named_when_deleting(store, tmp_path):
    from llamadesk.app.chat.turn_lock import turn_lock_path

    app = make_app(store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ask(pilot, "first question")
        lock = turn_lock_path(store.path, screen.conversation.id)
        lock.unlink(missing_ok=True)
        lock.symlink_to(tmp_path / "victim.txt")
        await pilot.press("f8")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await pilot.pause()
        notices = [n.message for n in app._notifications]
        assert any("is not a file llamadesk made" in n and "remove it" in n for n in notices), notices
        assert not (tmp_path / "victim.txt").exists() and store.conversations()


async def test_a_turn_another_llamadesk_is_taking_here_is_said_and_the_prompt_kept(store):
    from llamadesk.app.chat.turn_lock import claim_turn

    app = make_app(store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ask(pilot, "first question")
        before = store.messages(screen.conversation.id)
        other = Store(store.path)  # `chat --continue` in another process, mid-reply
        held = claim_turn(other, screen.conversation.id)
        try:
            box = screen.query_one(PromptBox)
            box.focus()
            box.text = "second question"
            await pilot.press("enter")
            await pilot.pause()
            notices = [n.message for n in app._notifications]
            assert any(
                f"conversation {screen.conversation.id} is taking a turn in another llamadesk" in n for n in notices
            )
            assert box.text == "second question" and screen.reply is None
            assert store.messages(screen.conversation.id) == before == screen.messages
            await pilot.press("ctrl+r")  # regenerating is a turn too: the last reply stays
            await pilot.pause()
            assert store.messages(screen.conversation.id) == before and screen.reply is None
        finally:
            held.release()
            other.close()
        await pilot.press("enter")  # its turn is over: sent
        await wait_until(pilot, lambda: screen.reply is None and len(screen.messages) == 4, what="the reply")
        assert texts(screen)[-1] == ("assistant", "Echo: second question", "complete")


async def test_turns_taken_elsewhere_meanwhile_are_shown_and_sent_before_the_next_reply(store):
    loader = FakeLoader()
    app = make_app(store, loader)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ask(pilot, "first question")
        other = Store(store.path)  # `chat --continue` went on with this conversation
        other.add_message(screen.conversation.id, "user", "a question from the CLI")
        other.add_message(screen.conversation.id, "assistant", "the CLI's reply")
        other.close()
        await ask(pilot, "second question")
        assert [content for _, content, _ in texts(screen)] == [
            "first question",
            "Echo: first question",
            "a question from the CLI",
            "the CLI's reply",
            "second question",
            "Echo: second question",
        ]
        assert [(m.role, m.content) for m in store.messages(screen.conversation.id)] == [
            (role, content) for role, content, _ in texts(screen)
        ]
        # The model was asked about the stored history, not the one this window had shown.
        assert [m["content"] for m in loader.engines[-1].prompts[-1] if m["role"] != "system"] == [
            content for _, content, _ in texts(screen)[:-1]
        ]
        assert [v.content for v in screen.query(MessageView)][2:4] == ["a question from the CLI", "the CLI's reply"]


async def test_a_stored_conversation_reopens_with_interrupted_replies_marked(store):
    conversation = store.new_conversation("old one", Config().conversation_settings())
    store.add_message(conversation.id, "user", "question")
    store.add_message(conversation.id, "assistant", "half an ans", "interrupted")
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        screen.open_conversation(conversation.id)
        await pilot.pause()
        views = list(screen.query(MessageView))
        assert [v.content for v in views] == ["question", "half an ans"]
        assert "interrupted" in str(views[1]._label.render())
        # The model sees the interrupted reply as said; the next answer follows it.
        await ask(pilot, "go on")
        assert texts(screen)[-1] == ("assistant", "Echo: go on", "complete")


async def test_settings_screen_saves_per_conversation_settings_and_reports_errors(store):
    loader = FakeLoader()
    app = make_app(store, loader)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await ask(pilot, "hello")
        await pilot.press("f3")
        assert isinstance(app.screen, SettingsScreen)
        temperature = app.screen.query_one("#temperature")
        temperature.value = "hot"
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, SettingsScreen)
        assert "not a number" in str(app.screen.query_one("#error").render())
        temperature.value = "0.1"
        app.screen.query_one("#context_length").value = "1024"
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, ChatScreen)
        saved = store.conversation(screen.conversation.id).settings
        assert saved.temperature == 0.1 and saved.context_length == 1024
        # A new context length reloads the model with it; the old one is closed.
        await wait_until(pilot, lambda: len(loader.engines) == 2 and loader.engines[1].n_ctx == 1024)
        assert loader.engines[0].closed
        await ask(pilot, "again")
        assert "/1024" in str(screen.query_one(StatusBar).render())


async def test_model_picker_lists_the_library_and_switching_closes_the_old_model(store):
    loader = FakeLoader()
    app = make_app(store, loader)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await ask(pilot, "hello")
        await pilot.press("ctrl+g")
        picker = app.screen
        assert isinstance(picker, ModelPickerScreen)
        table = picker.query_one("#models")
        await wait_until(pilot, lambda: table.row_count >= 2, timeout=30, what="the library to be read")
        names = [table.get_row_at(i)[0] for i in range(table.row_count)]
        assert {"smollm2", "gemma3-270m"} <= set(names)
        row = table.get_row(names[names.index("smollm2")]) if False else table.get_row_at(names.index("smollm2"))
        assert row[2] == "Q4_1" and row[4] == "yes" and row[5] == "yes"
        table.move_cursor(row=names.index("gemma3-270m"))
        await pilot.press("enter")
        await wait_until(pilot, lambda: loader.specs[-1] == "gemma3-270m", what="the new model to load")
        assert loader.engines[0].closed and not loader.engines[-1].closed
        assert store.conversation(screen.conversation.id).settings.model == "gemma3-270m"
        assert "gemma3-270m" in str(screen.query_one(StatusBar).render())


async def test_when_the_conversation_outgrows_the_context_the_ui_marks_where_memory_begins(store):
    loader = FakeLoader(n_ctx=96)
    config = Config(max_tokens=16)
    # Replies stopped before their first word are stored empty and not sent: the marker must
    # still land on the right message.
    earlier = store.new_conversation("earlier", config.conversation_settings())
    for i in range(3):
        store.add_message(earlier.id, "user", f"old question {i}")
        store.add_message(earlier.id, "assistant", "", "interrupted")
    app = make_app(store, loader, config)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        screen.open_conversation(earlier.id)
        for i in range(8):
            await ask(pilot, f"question number {i} with some padding words")
        assert screen.memory_start > 0
        assert screen.messages[screen.memory_start].role == "user"
        views = list(screen.query(MessageView))
        assert views[0].has_class("forgotten")
        marked = [v for v in views if v.has_class("memory-start")]
        assert len(marked) == 1 and marked[0].border_title == MEMORY_START_TITLE
        assert marked[0].message_id == screen.messages[screen.memory_start].id
        assert f"forgot {screen.memory_start} msgs" in str(screen.query_one(StatusBar).render())
        # Questions left without a reply are not sent: turns alternate, as templates like Gemma's demand.
        for prompt in loader.engines[0].prompts:
            roles = [m["role"] for m in prompt[1:]]
            assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"], roles
            assert not any(m["content"].startswith("old question") for m in prompt)
        # The model saw only the kept turns, after the system prompt.
        seen = loader.engines[0].prompts[-1]
        assert seen[0]["role"] == "system"
        assert seen[1]["content"] == screen.messages[screen.memory_start].content
        # Reopened, it starts from the same message: from the first, it dropped turns anew and
        # read the whole window again instead of what the prompt cache holds.
        start = screen.messages[screen.memory_start].id
        assert store.conversation(earlier.id).memory_start_id == start
        screen.open_conversation(None)
        screen.open_conversation(earlier.id)
        assert screen.messages[screen.memory_start].id == start
        assert f"forgot {screen.memory_start} msgs" in str(screen.query_one(StatusBar).render())
        await ask(pilot, "one more question")
        assert loader.engines[-1].prompts[-1][1]["content"] == screen.messages[screen.memory_start].content
        assert screen.messages[screen.memory_start].id >= start  # memory only moves forward


async def test_help_lists_every_key_and_the_palette_has_every_action(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        descriptions = {d for _, d in app.screen.rows}
        chat_actions = {b.description for b in ChatScreen.BINDINGS}
        assert chat_actions <= descriptions
        assert {"Send the prompt", "New line in the prompt", "Quit"} <= descriptions
        await pilot.press("escape")
        assert isinstance(app.screen, ChatScreen)
        commands = list(app.get_system_commands(app.screen))
        titles = [command.title for command in commands]
        assert chat_actions <= set(titles)
        assert len(titles) == len(set(titles)), "a title stands twice in the palette"
        [keys] = [command for command in commands if command.title == "Keys"]
        assert keys.help == "key: f1"  # llamadesk's help screen, not Textual's keys panel
        [regenerate] = [command for command in commands if command.title == "Regenerate"]
        assert regenerate.help == "key: ^r"
        # Through the palette: Regenerate runs the action.
        await ask(pilot, "hello")
        first_reply = app.screen.messages[-1].created
        await pilot.press("ctrl+p")
        await pilot.press(*"Regenerate")
        await wait_until(pilot, lambda: app.screen.query("CommandList Option") or True)
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, ChatScreen)
                and app.screen.messages[-1].created != first_reply
                and app.screen.reply is None
            ),
        )


async def test_every_modes_footer_starts_with_the_keys_that_lead_elsewhere(store):
    # Each mode has more keys than 80 columns show; the footer cuts from the right, so F1 (every
    # key), F6 (chat or translation) and F5 (models) come first wherever the focus is.
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        for key, mode in (("f6", "translate"), ("f5", "models"), ("f6", "chat")):
            shown = [k.key for k in app.screen.query_one(Footer).query(FooterKey)]
            assert shown[:3] == ["f1", "f6", "f5"], shown
            assert len(shown) > 4, "the mode's own keys follow"
            await pilot.press(key)
            await wait_until(pilot, lambda mode=mode: app.current_mode == mode, what=f"the {mode} mode")
            await pilot.pause()


async def test_the_theme_is_remembered_in_the_config(store):
    app = make_app(store, save_settings=True)
    async with app.run_test(size=(80, 24)) as pilot:
        app.theme = "nord"
        await pilot.pause()
    assert load_config().theme == "nord"
    again = make_app(store, config=load_config())
    async with again.run_test(size=(80, 24)):
        assert again.theme == "nord"


async def test_quitting_closes_the_model(store):
    loader = FakeLoader()
    app = make_app(store, loader)
    async with app.run_test(size=(80, 24)) as pilot:
        await ask(pilot, "hello")
        await pilot.press("ctrl+q")
    assert loader.engines and all(engine.closed for engine in loader.engines)


async def test_narrow_terminal_hides_the_list_until_asked(store):
    app = make_app(store)
    async with app.run_test(size=(50, 20)) as pilot:
        sidebar = app.screen.query_one("#sidebar")
        await wait_until(pilot, lambda: not sidebar.display, what="the list to hide")
        await ask(pilot, "hi")
        await pilot.press("ctrl+f")
        assert sidebar.display
        await pilot.press("escape")
        assert app.screen.query_one(PromptBox).has_focus


async def test_export_writes_markdown_and_json_under_the_data_folder(store, llamadesk_home):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "hello")
        await pilot.press("ctrl+s")
        await pilot.press("f9")
        folder = llamadesk_home / "data" / "exports"
        name = f"conversation-{screen.conversation.id}"
        assert "## Assistant\n\nEcho: hello" in (folder / f"{name}.md").read_text()
        assert '"content": "Echo: hello"' in (folder / f"{name}.json").read_text()


async def test_leaving_a_conversation_mid_reply_keeps_the_partial_reply(store):
    app = make_app(store, FakeLoader(token_delay=0.002))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "a long one", wait=False)
        await wait_until(pilot, lambda: screen.reply is not None and screen.reply.text)
        conversation_id = screen.conversation.id
        await pilot.press("ctrl+n")
        assert screen.conversation is None and screen.reply is None
        await pilot.pause(0.1)
        kept = store.messages(conversation_id)[-1]
        assert kept.state == "interrupted" and kept.content.startswith("word0")
        await ask(pilot, "hi")  # the app carries on
        assert screen.messages[-1].content == "Echo: hi"


async def test_streaming_reuses_one_markdown_parser(store, monkeypatch):
    """Textual would build a MarkdownIt per streamed append (~3 ms of the UI thread each)."""
    import markdown_it

    from llamadesk.app.tui.widgets.message_view import shared_markdown_parser

    shared_markdown_parser()  # made once, before counting
    built = []
    original_init = markdown_it.MarkdownIt.__init__

    def counting_init(self, *args, **kwargs):
        built.append(args)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(markdown_it.MarkdownIt, "__init__", counting_init)
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "show me code please")
        views = list(screen.query(MessageView))
        assert len(views) == 2 and views[-1].markdown.source == screen.messages[-1].content
    assert built == []


async def test_an_export_never_replaces_another_conversations(store, tmp_path, monkeypatch):
    # Ids come back after a delete or in a fresh store: conversation-ID.md may be another's export.
    monkeypatch.setenv("LLAMADESK_HOME", str(tmp_path / "home"))
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await ask(pilot, "grocery list")
        folder = tmp_path / "home" / "data" / "exports"
        folder.mkdir(parents=True)
        older = folder / f"conversation-{screen.conversation.id}.md"
        older.write_text("# secret plan alpha\n")
        await pilot.press("ctrl+s")
        await pilot.press("ctrl+s")
        assert older.read_text() == "# secret plan alpha\n"
        written = [folder / f"conversation-{screen.conversation.id}-{n}.md" for n in (2, 3)]
        assert all("Echo: grocery list" in path.read_text() for path in written)
        assert [f"Exported to {path}" for path in written] == [
            n.message for n in app._notifications if n.message.startswith("Exported")
        ]


async def test_an_export_folder_that_cannot_be_made_is_a_failed_export_not_a_crash(store, tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMADESK_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "data").mkdir(parents=True)
    (tmp_path / "home" / "data" / "exports").write_text("a file where the folder goes")
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await ask(pilot, "hello")
        await pilot.press("ctrl+s")
        await pilot.press("f9")
        failed = [n for n in app._notifications if n.message.startswith("Export failed:")]
        assert len(failed) == 2 and all(n.severity == "error" for n in failed)
        exports = tmp_path / "home" / "data" / "exports"  # what is wrong and what to do, not "[Errno 17]"
        assert failed[0].message == f"Export failed: {exports} is a file, where exports go in a folder; move it away"
        assert isinstance(app.screen, ChatScreen)
    assert app.crash is None


async def test_the_palettes_keys_and_quit_run_the_apps_own_actions(store):
    loader = FakeLoader()
    app = make_app(store, loader)
    async with app.run_test(size=(80, 24)) as pilot:
        await ask(pilot, "hello")  # a model in memory, for Quit to close
        commands = {command.title: command for command in app.get_system_commands(app.screen)}
        await commands["Keys"].callback()
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help screen")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen), what="the chat screen")
        await commands["Quit"].callback()
        assert app.return_code == 0  # the app is on its way out
        assert loader.engines and all(engine.closed for engine in loader.engines)


async def test_a_long_conversation_shows_its_newest_messages_and_counts_the_rest(store):
    conversation = store.new_conversation("long", Config().conversation_settings())
    for n in range(40):
        store.add_message(conversation.id, "user", f"question {n}")
        store.add_message(conversation.id, "assistant", f"answer {n}")
    app = make_app(store, FakeLoader(n_ctx=100_000))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        screen.open_conversation(conversation.id)

        def shows_the_newest() -> bool:
            hidden = len(screen.messages) - chat_module.MAX_SHOWN_MESSAGES
            shown = [view.message_id for view in screen.query(MessageView)]
            note = str(screen.query_one("#earlier").render())
            return shown == [m.id for m in screen.messages[-chat_module.MAX_SHOWN_MESSAGES :]] and note.startswith(
                f"{hidden} earlier messages are saved"
            )

        await wait_until(pilot, shows_the_newest, timeout=10, what="the newest 60 messages")
        await pilot.press("ctrl+r")  # the last reply goes, a new one comes
        await wait_until(pilot, lambda: screen.reply is None and len(screen.messages) == 80, what="the new reply")
        await wait_until(pilot, shows_the_newest, timeout=10, what="60 messages after ctrl+r")
        await pilot.press("ctrl+l")  # the last prompt and its reply go: two earlier ones come back
        await wait_until(pilot, lambda: len(screen.messages) == 78, what="the prompt taken back")
        await wait_until(pilot, shows_the_newest, timeout=10, what="60 messages after ctrl+l")
        assert screen.query(MessageView).first().message_id == screen.messages[18].id


async def test_a_damaged_stored_setting_is_named_and_the_default_used(store, tmp_path):
    import sqlite3

    conversation = store.new_conversation("edited by hand", Config().conversation_settings())
    store.add_message(conversation.id, "user", "Hello")
    with sqlite3.connect(store.path) as db:  # a row damaged or edited outside the app
        db.execute("UPDATE conversations SET temperature = 'hot' WHERE id = ?", (conversation.id,))
    app = make_app(store, FakeLoader())
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.screen
        screen.open_conversation(conversation.id)
        await wait_until(
            pilot,
            lambda: any("stored temperature" in n.message for n in app._notifications),
            what="the notice naming the setting",
        )
        assert screen.settings.temperature == Config().conversation_settings().temperature
