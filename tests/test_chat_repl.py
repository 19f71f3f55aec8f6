"""`llamadesk chat` without a prompt, on a terminal: a long chat keeps answering as in the app."""

from __future__ import annotations

import builtins

import pytest

from llamadesk.app.commands.chat import repl
from llamadesk.app.engine.types import LoadSettings, Sampling

# What changes greedy output is pinned, so the test does not depend on the machine's load.
PINNED = LoadSettings(n_ctx=256, n_threads=2, n_batch=512, kv_cache_type="f16", flash_attn=False)


@pytest.fixture(scope="module")
def small_context_engine(smollm2_path):
    from llamadesk.app.engine.llama_engine import Engine

    with Engine.load(smollm2_path, PINNED) as engine:
        yield engine


def test_a_chat_longer_than_the_context_drops_old_turns_and_keeps_answering(small_context_engine, monkeypatch, capsys):
    long_line = "Tell me about the history of tea in China, India and Britain. " * 3  # ~40 tokens
    lines = iter([long_line] * 6 + ["/bye"])
    monkeypatch.setattr(builtins, "input", lambda _prompt="": next(lines))
    prompts: list[int] = []
    real_stream = small_context_engine.stream_chat

    def counting_stream(messages, sampling):
        prompts.append(len(small_context_engine.chat_prompt_tokens(messages)))
        return real_stream(messages, sampling)

    monkeypatch.setattr(small_context_engine, "stream_chat", counting_stream)
    code = repl(small_context_engine, "Be brief.", Sampling(temperature=0.0, max_tokens=16), show_stats=False)
    out, err = capsys.readouterr()
    assert code == 0
    assert len(prompts) == 6
    # Six ~40-token questions and their replies are far more than 256 tokens, yet every prompt left
    # room for its reply, and the user was told the model forgot the oldest turns.
    assert sum(prompts) > 2 * PINNED.n_ctx
    assert all(p + 16 <= PINNED.n_ctx for p in prompts)
    assert "no longer sees" in err
    assert "context" not in err.replace("the model no longer sees", "")  # no error about the context


def test_a_short_chat_keeps_every_turn(small_context_engine, monkeypatch, capsys):
    lines = iter(["Hi!", "What is 2 + 2?", "/bye"])
    monkeypatch.setattr(builtins, "input", lambda _prompt="": next(lines))
    seen: list[int] = []
    real_stream = small_context_engine.stream_chat
    monkeypatch.setattr(
        small_context_engine,
        "stream_chat",
        lambda messages, sampling: seen.append(len(messages)) or real_stream(messages, sampling),
    )
    assert repl(small_context_engine, "Be brief.", Sampling(temperature=0.0, max_tokens=8), show_stats=False) == 0
    assert seen == [2, 4]  # system + question, then system + question, reply, question
    assert "no longer sees" not in capsys.readouterr().err


def test_in_a_terminal_a_long_line_and_a_paste_each_arrive_whole(smollm2_path, tmp_path):
    # The terminal's own line mode cut a line at 4,095 characters without a word, and each line
    # of a pasted text became a question of its own.
    import os
    import shutil
    import subprocess
    import time

    from llamadesk.app.chat.store import Store
    from tests.conftest import LLAMADESK, PINNED_FLAGS
    from tests.tui.tmux_terminal import TMUX
    from tests.tui.waiting import wait_until_sync

    assert shutil.which("tmux"), "tmux is needed for this test; install it (apt-get install tmux)"
    home = tmp_path / "home"
    session = f"repl-{os.getpid()}"
    command = (
        f"exec env LLAMADESK_HOME={home} {LLAMADESK} chat -m {smollm2_path} {' '.join(PINNED_FLAGS)} "
        "--temperature 0 --max-tokens 2 --save"
    )
    subprocess.run([*TMUX, "new-session", "-d", "-s", session, "-x", "120", "-y", "30", command], check=True)
    try:

        def screen() -> str:
            return subprocess.run([*TMUX, "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout

        def paste(text: str, bracketed: bool) -> None:
            source = tmp_path / "buffer.txt"
            source.write_text(text)
            subprocess.run([*TMUX, "load-buffer", str(source)], check=True)
            subprocess.run([*TMUX, "paste-buffer", *(["-p"] if bracketed else []), "-t", session], check=True)
            time.sleep(0.5)
            subprocess.run([*TMUX, "send-keys", "-t", session, "Enter"], check=True)

        def stored_messages() -> list:
            if not (home / "data" / "conversations.sqlite3").exists():
                return []
            store = Store(home / "data" / "conversations.sqlite3")
            try:
                return [m for c in store.conversations() for m in store.messages(c.id)]
            finally:
                store.close()

        wait_until_sync(lambda: ">>>" in screen(), 120, "the prompt")  # (capture-pane drops trailing spaces)
        long_line = "y" * 4500 + " END"  # past the terminal line mode's 4,095
        paste(long_line, bracketed=False)
        wait_until_sync(lambda: len([m for m in stored_messages() if m.state == "complete"]) == 2, 120, "a reply")
        # The next prompt: readline turns bracketed paste on only while it reads a line.
        wait_until_sync(lambda: screen().rstrip().splitlines()[-1] == ">>>", 60, "the next prompt")
        time.sleep(0.5)
        paste("Summarize this:\nThe cat sat on the mat.\nIt was happy.", bracketed=True)
        wait_until_sync(lambda: len([m for m in stored_messages() if m.state == "complete"]) == 4, 120, "a reply")
        questions = [m.content for m in stored_messages() if m.role == "user"]
        assert questions == [long_line, "Summarize this:\nThe cat sat on the mat.\nIt was happy."]
    finally:
        subprocess.run([*TMUX, "kill-session", "-t", session], capture_output=True)


def test_ctrl_c_while_a_long_message_is_fitted_stops_at_the_next_count():
    # llama.cpp's tokenizer never looks at the stop: the Ctrl-C was recorded and forgotten, and the
    # reply went on to the end (minutes for a 21 MB paste), exit 0.
    import os
    import signal

    from llamadesk.app.commands.chat import fit_turns
    from llamadesk.app.core.errors import Interrupted

    class SlowTokenizer:
        n_ctx = 256
        counts = 0

        def chat_prompt_tokens(self, messages):
            self.counts += 1
            if self.counts == 2:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while this count runs
            return [0] * sum(len(m["content"]) for m in messages)

        def request_stop(self):
            pass

    engine = SlowTokenizer()
    turns = [{"role": "user", "content": "x" * 100_000}]
    with pytest.raises(Interrupted):
        fit_turns(engine, "", turns, Sampling(max_tokens=16), 0)
    assert engine.counts == 2  # not one count more


def test_a_message_stopped_before_its_reply_began_is_dropped(small_context_engine, monkeypatch, capsys):
    # It stayed in the chat with an empty reply, and was read again before every next message.
    import llamadesk.app.commands.chat as chat_command

    lines = iter(["A very long message.", "hi", "/bye"])
    monkeypatch.setattr(builtins, "input", lambda _prompt="": next(lines))
    sent: list[list[str]] = []

    def stream_reply(engine, messages, sampling, show_stats):
        sent.append([m["content"] for m in messages])
        return ("", True) if len(sent) == 1 else ("Hello!", False)  # Ctrl-C before the first word, then a reply

    monkeypatch.setattr(chat_command, "stream_reply", stream_reply)
    assert repl(small_context_engine, "Be brief.", Sampling(max_tokens=8), show_stats=False) == 0
    assert sent == [["Be brief.", "A very long message."], ["Be brief.", "hi"]]
    assert "that message is dropped" in capsys.readouterr().err


def test_a_turn_another_llamadesk_is_taking_is_one_line_and_the_chat_goes_on(
    small_context_engine, monkeypatch, capsys, tmp_path
):
    from llamadesk.app.chat.store import ConversationSettings, Store
    from llamadesk.app.chat.stored_chat import StoredChat
    from llamadesk.app.chat.turn_lock import claim_turn

    store = Store(tmp_path / "conversations.sqlite3")
    conversation = store.new_conversation("held", ConversationSettings())
    other = Store(store.path)  # `chat --continue` in another process, mid-reply
    held = claim_turn(other, conversation.id)

    def answers():
        yield "Hi!"  # refused: the other's turn
        held.release()
        yield "Hi again!"
        yield "/bye"

    lines = answers()
    monkeypatch.setattr(builtins, "input", lambda _prompt="": next(lines))
    chat = StoredChat(store, conversation, conversation.settings, None)
    try:
        assert repl(small_context_engine, "Be brief.", Sampling(temperature=0.0, max_tokens=4), False, chat) == 0
        messages = store.messages(conversation.id)
    finally:
        chat.close()
        other.close()
    assert f"llamadesk: conversation {conversation.id} is taking a turn in another llamadesk" in capsys.readouterr().err
    assert [(m.role, m.content) for m in messages][0] == ("user", "Hi again!") and len(messages) == 2
