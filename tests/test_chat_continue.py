"""`llamadesk chat --save / --continue / --conversation ID / --list / --no-prompt-cache`, in process.

Each test has a home of its own (its store, its cache, its config.json); the model is the starter
by path, pinned and greedy, so what it says is the same with the prompt cache and without it.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from llamadesk.app.chat.store import Store
from tests.conftest import PINNED_FLAGS, PINNED_SAMPLING_FLAGS, assert_one_clear_line, run_cli


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path


def chat(home: Path, model: Path, *args: str, tokens: int = 12):
    result = run_cli(
        "chat",
        "-m",
        str(model),
        *PINNED_FLAGS,
        *PINNED_SAMPLING_FLAGS,
        "--max-tokens",
        str(tokens),
        "--stats",
        *args,
        env={"LLAMADESK_HOME": str(home)},
    )
    assert result.returncode == 0, result.stderr
    return result


def cache_files(home: Path) -> list[Path]:
    return sorted((home / "data" / "prompt-cache").glob("*.kvc"))


def stored(home: Path) -> Store:
    return Store(home / "data" / "conversations.sqlite3")


def saving_chat_process(home: Path, model: Path, question: str, tokens: int):
    """`llamadesk chat --save QUESTION` in a process of its own (for signals and closed pipes)."""
    import os
    import subprocess

    from tests.conftest import LLAMADESK

    return subprocess.Popen(
        [str(LLAMADESK), "chat", "-m", str(model), *PINNED_FLAGS, *PINNED_SAMPLING_FLAGS]
        + ["--max-tokens", str(tokens), "--save", question],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "LLAMADESK_HOME": str(home)},
    )


def continue_chat(home: Path, model: Path, question: str):
    """`llamadesk chat --continue QUESTION`, pinned and greedy, a short reply."""
    args = ("-m", str(model), *PINNED_FLAGS, *PINNED_SAMPLING_FLAGS, "--max-tokens", "4", "--continue", question)
    return run_cli("chat", *args, env={"LLAMADESK_HOME": str(home)})


def first_words(process, at_least: int = 40) -> bytes:
    """What the process has printed once the reply has started streaming (at least `at_least` bytes)."""
    import os
    import time

    said = b""
    deadline = time.monotonic() + 120
    while len(said) < at_least and time.monotonic() < deadline and process.poll() is None:
        said += os.read(process.stdout.fileno(), 4096)
    return said


def test_continue_goes_on_from_the_cache_and_says_what_it_says_without_it(home, smollm2_path):
    first = [chat(home, smollm2_path, "--save", "Tell me three facts about Paris.") for _ in range(2)]
    assert first[0].stdout == first[1].stdout  # two identical conversations, 1 and 2
    assert len(cache_files(home)) == 2
    # A stored conversation goes on later: its context is the model's, not one sized for this reply.
    assert "/8192;" in first[0].stderr, first[0].stderr
    with_cache = chat(home, smollm2_path, "--conversation", "1", "And about Lyon?")
    without = chat(home, smollm2_path, "--conversation", "2", "--no-prompt-cache", "And about Lyon?")
    assert with_cache.stdout == without.stdout
    assert "from the prompt cache" in with_cache.stderr and "from the prompt cache" not in without.stderr
    store = stored(home)
    for conversation in (1, 2):
        messages = store.messages(conversation)
        assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
        assert messages[-1].content.strip() == with_cache.stdout.strip() and messages[-1].state == "complete"
    # --continue takes the most recently active conversation: 2.
    chat(home, smollm2_path, "--continue", "Thanks!", tokens=4)
    assert [len(store.messages(c)) for c in (1, 2)] == [4, 6]
    listing = run_cli("chat", "--list", env={"LLAMADESK_HOME": str(home)})
    assert listing.returncode == 0
    assert [line.split()[0] for line in listing.stdout.splitlines()] == ["2", "1"]
    assert "Tell me three facts about Paris." in listing.stdout
    store.close()


def test_a_long_conversation_that_drops_old_turns_answers_the_same_with_the_cache(home, smollm2_path):
    """A 256-token context: old turns are dropped, the prompt's start changes, what still matches is reused.

    A reused cache that did not match the prompt would answer something else from the first words.
    Past them the two runs may part at a near tie: the cached one decodes the new turn as a batch
    of its own, the fresh one as part of the whole prompt, and llama.cpp rounds the two differently
    (bench/RESULTS.md "batch numerics"). The first test above checks whole replies where the cache
    holds the whole previous prompt.
    """
    question = "Tell me about the history of tea in China, India and Britain. " * 3
    small = ("--ctx", "256")
    chat(home, smollm2_path, *small, "--save", question)
    chat(home, smollm2_path, *small, "--save", "--no-prompt-cache", question)
    dropped = False
    for turn in range(3):
        ask = f"{question} (part {turn + 2})"
        cached = chat(home, smollm2_path, *small, "--conversation", "1", ask)
        fresh = chat(home, smollm2_path, *small, "--conversation", "2", "--no-prompt-cache", ask)
        assert cached.stdout[:24] == fresh.stdout[:24] and len(cached.stdout) > 24, turn
        assert "from the prompt cache" in cached.stderr  # after a drop, at least the system prompt
        dropped = dropped or "no longer sees" in cached.stderr
    assert dropped


def test_budget_zero_and_no_prompt_cache_write_nothing(home, smollm2_path):
    chat(home, smollm2_path, "--save", "--no-prompt-cache", "Hello!", tokens=4)
    assert cache_files(home) == []
    (home / "config").mkdir(exist_ok=True)
    (home / "config" / "config.json").write_text(json.dumps({"prompt_cache_mb": 0}))
    chat(home, smollm2_path, "--continue", "Hello again!", tokens=4)
    assert cache_files(home) == []
    (home / "config" / "config.json").write_text(json.dumps({"prompt_cache_mb": 64}))
    chat(home, smollm2_path, "--continue", "Hello once more!", tokens=4)
    assert len(cache_files(home)) == 1


def test_list_with_a_question_says_it_answers_nothing(home):
    result = run_cli("chat", "--list", "what is this", env={"LLAMADESK_HOME": str(home)})
    assert_one_clear_line(result, 2, "--list lists the stored conversations and answers nothing")


def test_continuing_what_does_not_exist_is_one_clear_line(home):
    env = {"LLAMADESK_HOME": str(home)}
    assert_one_clear_line(run_cli("chat", "--continue", "Hi", env=env), 2, "no stored conversation")
    assert_one_clear_line(run_cli("chat", "--conversation", "42", "Hi", env=env), 2, "conversation 42 does not exist")
    (home / "config").mkdir(exist_ok=True)
    (home / "config" / "config.json").write_text(json.dumps({"prompt_cache_mb": -1}))
    # A broken config.json stops the CLI first, as the README promises, naming the setting.
    assert_one_clear_line(run_cli("chat", "--continue", "Hi", env=env), 2, "config.json", "prompt_cache_mb")


def test_a_conversation_id_past_sqlites_integers_does_not_exist(home):
    # It raised OverflowError in SQLite: an internal error, exit 1.
    env = {"LLAMADESK_HOME": str(home)}
    result = run_cli("chat", "--conversation", "99999999999999999999", "Hi", env=env)
    assert_one_clear_line(result, 2, "conversation 99999999999999999999 does not exist")


def test_a_prompt_or_system_prompt_that_is_not_utf8_is_bad_input(home, smollm2_path):
    # Python keeps the bytes of a Latin-1 argument as lone surrogates; tokenizing raised
    # UnicodeEncodeError, an internal error with exit 1.
    env = {"LLAMADESK_HOME": str(home)}
    for extra in (["caf\udce9"], ["--system", "caf\udce9", "Hi"]):
        result = run_cli("chat", "-m", str(smollm2_path), *PINNED_FLAGS, *PINNED_SAMPLING_FLAGS, *extra, env=env)
        assert_one_clear_line(result, 2, "bytes that are not UTF-8")


def test_a_store_another_program_holds_locked_is_not_an_empty_one(home):
    # The store went on in memory, empty, and the CLI then said "conversation 1 does not exist"
    # (exit 2, after a notice: two lines) or listed nothing (exit 0).
    import subprocess
    import sys

    from llamadesk.app.chat.store import ConversationSettings

    (home / "data").mkdir(parents=True, exist_ok=True)
    store = stored(home)
    store.new_conversation("kept", ConversationSettings())
    store.close()
    hold = (
        "import sqlite3, sys, time; db = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "db.execute('PRAGMA locking_mode=EXCLUSIVE'); db.execute('BEGIN EXCLUSIVE'); "
        "db.execute('SELECT count(*) FROM messages').fetchall(); print('locked', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(home / "data" / "conversations.sqlite3")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        env = {"LLAMADESK_HOME": str(home)}
        for argv in (["chat", "--list"], ["chat", "--conversation", "1", "Hi"], ["chat", "--continue", "Hi"]):
            assert_one_clear_line(run_cli(*argv, env=env), 1, "its conversations cannot be read now")
    finally:
        holder.kill()
        holder.wait()
    listed = run_cli("chat", "--list", env={"LLAMADESK_HOME": str(home)})
    assert listed.returncode == 0 and "kept" in listed.stdout


def test_one_bad_config_value_stops_a_stored_chat_instead_of_caching_with_the_default(home, smollm2_path):
    # config.json turns the cache off; with one unrelated bad value the chat printed a warning,
    # then wrote the KV cache with the default 4 GiB budget, exit 0.
    (home / "config").mkdir()
    (home / "config" / "config.json").write_text(json.dumps({"prompt_cache_mb": 0, "temperature": 9}))
    env = {"LLAMADESK_HOME": str(home)}
    for stored_chat in (["--save"], ["--continue"]):
        result = run_cli("chat", "-m", str(smollm2_path), *PINNED_FLAGS, *stored_chat, "Hi", env=env)
        assert_one_clear_line(result, 2, "config.json", "temperature must be a number from 0 to 2, not 9")
    assert cache_files(home) == []


def test_a_turn_refused_before_its_reply_leaves_no_question_and_no_empty_conversation(home, smollm2_path):
    # A system prompt longer than --ctx (PromptTooLong): the question stayed stored without a reply
    # (and went to the model again with every next question), in a conversation --save had just made.
    env = {"LLAMADESK_HOME": str(home)}
    long_system = "word " * 400
    common = ("-m", str(smollm2_path), *PINNED_FLAGS, *PINNED_SAMPLING_FLAGS, "--ctx", "256", "--max-tokens", "4")
    refused = run_cli("chat", *common, "--save", "--system", long_system, "Hi", env=env)
    assert_one_clear_line(refused, 2, "the context holds 256")
    store = stored(home)
    assert store.conversations() == []
    chat(home, smollm2_path, "--save", "Hello!", tokens=4)
    [conversation] = store.conversations()
    before = store.messages(conversation.id)
    refused = run_cli("chat", *common, "--continue", "--system", long_system, "Hi again", env=env)
    # (after a line saying which old messages the model would no longer have seen)
    assert refused.returncode == 2 and "the context holds 256" in refused.stderr.splitlines()[-1]
    assert store.messages(conversation.id) == before  # the conversation it had is kept, untouched
    store.close()


@pytest.mark.parametrize(
    ("column", "value", "flag", "says"),
    [
        ("temperature", "hot", ("--temperature", "0"), 'temperature must be a number from 0 to 2, not "hot"'),
        ("temperature", 50, ("--temperature", "0"), "temperature must be a number from 0 to 2, not 50"),
        ("top_p", 5, ("--top-p", "0.9"), "top_p must be a number from 0 to 1, not 5"),
        (
            "max_tokens",
            "abc",
            ("--max-tokens", "4"),
            'max_tokens must be a whole number from 1 to 2147483647, not "abc"',
        ),
        ("max_tokens", -5, ("--max-tokens", "4"), "max_tokens must be a whole number from 1"),
    ],
)
def test_a_stored_setting_that_cannot_be_used_is_named_in_one_line(home, smollm2_path, column, value, flag, says):
    # A damaged or hand-edited row: "hot" was an internal error (TypeError), 50 or -5 ran silently.
    import sqlite3

    chat(home, smollm2_path, "--save", "--no-prompt-cache", "Hello!", tokens=4)
    raw = sqlite3.connect(home / "data" / "conversations.sqlite3", isolation_level=None)
    raw.execute(f"UPDATE conversations SET {column} = ?", (value,))
    raw.close()
    env = {"LLAMADESK_HOME": str(home)}
    # Without the flags the chat helper gives: the conversation's own settings apply.
    result = run_cli("chat", "-m", str(smollm2_path), *PINNED_FLAGS, "--continue", "--no-prompt-cache", "Hi", env=env)
    assert_one_clear_line(result, 2, "conversation 1's stored settings", says, f"give {flag[0]}")
    # A flag that replaces the bad setting for this chat lets it go on.
    chat(home, smollm2_path, "--continue", "--no-prompt-cache", *flag, "Hi", tokens=4)


def test_the_store_names_each_unusable_setting_and_stands_its_default_in(home):
    import sqlite3

    from llamadesk.app.chat.store import ConversationSettings
    from llamadesk.app.settings.chat_defaults import DEFAULT_TEMPERATURE

    (home / "data").mkdir()
    store = stored(home)
    good = store.new_conversation("good", ConversationSettings(temperature=0.5, context_length=128))
    bad = store.new_conversation("bad", ConversationSettings(temperature=0.5))
    raw = sqlite3.connect(home / "data" / "conversations.sqlite3", isolation_level=None)
    raw.execute("UPDATE conversations SET temperature = 'hot', model = '' WHERE id = ?", (bad.id,))
    raw.close()
    assert store.conversation(good.id).setting_problems == ()
    assert store.conversation(good.id).settings.context_length == 128  # what `chat --save --ctx 128` stores
    read = store.conversation(bad.id)
    assert [name for name, _ in read.setting_problems] == ["model", "temperature"]
    assert read.settings.temperature == DEFAULT_TEMPERATURE and read.settings.model == "smollm2"
    assert [c.title for c in store.conversations()] == ["bad", "good"]  # listing still works
    store.close()


def test_a_relative_model_or_adapter_path_is_stored_absolute(home, smollm2_path, tmp_path_factory, monkeypatch):
    # `chat --save -m ./my.gguf` stored "./my.gguf": --continue from any other folder found no model.
    from llamadesk.app.commands.options import lora_settings

    folder = tmp_path_factory.mktemp("models")
    (folder / "my.gguf").symlink_to(smollm2_path)
    (folder / "style.gguf").write_bytes(b"")
    monkeypatch.chdir(folder)
    chat(home, Path("./my.gguf"), "--save", "--no-prompt-cache", "Hello!", tokens=4)
    assert lora_settings(["./style.gguf:0.5"]) == ((str(folder / "style.gguf"), 0.5),)
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    store = stored(home)
    assert store.conversation(1).settings.model == str(folder / "my.gguf")
    store.close()
    env = {"LLAMADESK_HOME": str(home)}
    result = run_cli("chat", *PINNED_FLAGS, *PINNED_SAMPLING_FLAGS, "--max-tokens", "4", "--continue", "Hi", env=env)
    assert result.returncode == 0, result.stderr


def test_a_folder_in_place_of_the_store_is_named_as_what_is_wrong(home):
    # It said "try again once it is free": waiting does not move a folder.
    (home / "data" / "conversations.sqlite3").mkdir(parents=True)
    env = {"LLAMADESK_HOME": str(home)}
    for argv in (["chat", "--list"], ["chat", "--continue", "Hi"]):
        result = run_cli(*argv, env=env)
        assert_one_clear_line(result, 1, "a folder is in the place of the conversation store", "move it elsewhere")
        assert "try again" not in result.stderr


@pytest.mark.parametrize(("signal_name", "code"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_sigterm_or_sighup_mid_reply_stores_what_was_said_as_interrupted(home, smollm2_path, signal_name, code):
    # Ctrl-C stored the partial reply; SIGTERM and SIGHUP stored the question alone.
    import signal

    process = saving_chat_process(home, smollm2_path, "Write a very long story about a dragon.", 2000)
    said = first_words(process)
    process.send_signal(getattr(signal, signal_name))
    rest, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    store = stored(home)
    [conversation] = store.conversations()
    question, reply = store.messages(conversation.id)
    store.close()
    assert question.role == "user" and reply.role == "assistant" and reply.state == "interrupted"
    assert len(reply.content) >= 30 and (said + rest).decode().startswith(reply.content)


def test_sigkill_mid_reply_keeps_what_was_said_a_second_before(home, smollm2_path):
    # The CLI stored a reply only when it ended: a killed `chat --save` kept the question alone.
    import signal
    import time

    process = saving_chat_process(home, smollm2_path, "Write a very long story about a dragon.", 2000)
    said = first_words(process)
    time.sleep(2.5)  # past the store's save interval, twice
    process.send_signal(signal.SIGKILL)
    rest, _ = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL
    store = stored(home)
    [conversation] = store.conversations()
    question, reply = store.messages(conversation.id)
    store.close()
    assert question.role == "user" and reply.role == "assistant" and reply.state == "interrupted"
    assert len(reply.content) >= 40 and (said + rest).decode(errors="replace").startswith(reply.content)


def test_a_signal_before_the_reply_begins_takes_the_question_back(home, smollm2_path, monkeypatch):
    # SIGTERM while the prompt was fitted or the prompt cache read: the question stayed stored
    # without a reply, and went to the model again (two questions in a row) with the next one.
    from llamadesk.app.chat.stored_chat import StoredChat
    from llamadesk.app.cli import Terminated

    chat(home, smollm2_path, "--save", "Hello!", tokens=4)
    store = stored(home)
    [conversation] = store.conversations()
    before = store.messages(conversation.id)

    def terminated(chat, engine, tokens):
        raise Terminated(15)

    monkeypatch.setattr(StoredChat, "before_reply", terminated)
    result = continue_chat(home, smollm2_path, "Hi again")
    assert result.returncode == 143, result.stderr
    assert store.messages(conversation.id) == before
    store.close()


def test_a_reply_is_stored_as_it_streams_and_complete_when_it_ends(home, smollm2_path, monkeypatch):
    # What a SIGKILL would leave: the reply row, rewritten as it grows, "interrupted" until the end.
    from llamadesk.app.chat import stored_chat
    from llamadesk.app.chat.store import Store as StoreClass

    monkeypatch.setattr(stored_chat, "SAVE_INTERVAL_S", 0.0)
    seen: list[tuple[str, str]] = []
    update = StoreClass.update_message

    def recording(self, message, content, state):
        seen.append((content, state))
        return update(self, message, content, state)

    monkeypatch.setattr(StoreClass, "update_message", recording)
    result = chat(home, smollm2_path, "--save", "Name three colours.", tokens=12)
    store = stored(home)
    [conversation] = store.conversations()
    question, reply = store.messages(conversation.id)
    store.close()
    assert reply.state == "complete" and reply.content and result.stdout.startswith(reply.content.strip()[:5])
    growing = [content for content, state in seen if state == "interrupted"]
    assert len(growing) >= 3 and all(
        later.startswith(earlier) for earlier, later in zip(growing, growing[1:], strict=False)
    )
    assert seen[-1] == (reply.content, "complete")


def _read_only_store(home: Path, folder: bool = True):
    """A store holding conversation 1, made read-only (with its data folder, or the file alone)."""
    import contextlib
    import os

    from llamadesk.app.chat.store import ConversationSettings
    from tests.permissions import permissions_enforced

    (home / "data").mkdir(parents=True, exist_ok=True)
    store = stored(home)
    conversation = store.new_conversation("kept", ConversationSettings())
    store.add_message(conversation.id, "user", "from before")
    store.close()

    @contextlib.contextmanager
    def read_only():
        target = home / "data" if folder else home / "data" / "conversations.sqlite3"
        mode = target.stat().st_mode
        os.chmod(target, 0o555 if folder else 0o444)
        try:
            with permissions_enforced():
                yield
        finally:
            os.chmod(target, mode)

    return read_only()


def test_a_read_only_data_folder_still_lists_what_the_store_holds(home):
    # SQLite could not make the WAL index there: the store started empty and `--list` said
    # "cannot be read now: try again once it is free", as if another program held a lock.
    with _read_only_store(home):
        result = run_cli("chat", "--list", env={"LLAMADESK_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert "kept" in result.stdout and "try again" not in result.stderr


def test_a_one_shot_chat_whose_reply_could_not_be_saved_is_refused_before_loading(home, smollm2_path):
    # `chat --continue` answered, kept the reply in memory, quit at once and exited 0: it was lost.
    with _read_only_store(home, folder=False):
        result = continue_chat(home, smollm2_path, "Hi")
    # Refused before the model is loaded: answering first lost minutes of work on a Pi.
    assert_one_clear_line(result, 1, "cannot be written", "nothing was asked")
    store = stored(home)
    assert [m.content for m in store.messages(1)] == ["from before"]
    store.close()


def test_a_conversation_deleted_elsewhere_mid_reply_is_one_clear_line(home, smollm2_path, monkeypatch):
    # The app deleted it (f8) while `chat --continue` replied: "internal error" (FOREIGN KEY failed).
    from llamadesk.app.chat.store import ConversationSettings
    from llamadesk.app.chat.stored_chat import StoredChat

    (home / "data").mkdir(parents=True, exist_ok=True)
    store = stored(home)
    conversation = store.new_conversation("going", ConversationSettings(model=str(smollm2_path)))
    store.close()
    before_reply = StoredChat.before_reply

    def deleted_by_the_app(chat, engine, tokens):
        other = stored(home)
        other.delete(conversation.id)
        other.close()
        return before_reply(chat, engine, tokens)

    monkeypatch.setattr(StoredChat, "before_reply", deleted_by_the_app)
    result = run_cli(
        "chat",
        *PINNED_FLAGS,
        *PINNED_SAMPLING_FLAGS,
        "--max-tokens",
        "4",
        "--continue",
        "Hi",
        env={"LLAMADESK_HOME": str(home)},
    )
    assert_one_clear_line(result, 1, f"conversation {conversation.id} was deleted elsewhere")


def test_a_title_from_piped_text_shows_its_control_characters_instead_of_obeying_them(home, smollm2_path):
    # `cat untrusted.txt | llamadesk chat --save`, then `chat --list`: the title retitled the
    # terminal (OSC 0) and cleared it (ESC [2J).
    chat(home, smollm2_path, "--save", "\x1b]0;PWNED\x07\x1b[2J hello", tokens=2)
    listed = run_cli("chat", "--list", env={"LLAMADESK_HOME": str(home)})
    assert listed.returncode == 0 and "\x1b" not in listed.stdout and "\x07" not in listed.stdout
    assert "^[]0;PWNED^G^[[2J hello" in listed.stdout


def test_a_message_longer_than_the_context_says_the_model_sees_only_its_end(home, smollm2_path):
    # The stored chat cut the question from its front without a word (the one-shot path refuses it).
    question = "IMPORTANT: answer in French. " + "filler words here. " * 40 + "What is 2+2?"
    result = chat(home, smollm2_path, "--save", "--ctx", "128", question, tokens=4)
    assert "your message is longer than the context holds: the model sees only its end" in result.stderr


@pytest.mark.parametrize("flag", [None, "--system"])
def test_text_that_is_not_utf8_is_one_line_before_anything_is_stored(home, smollm2_path, flag):
    # The lone surrogate reached SQLite first: "internal error (UnicodeEncodeError ...)".
    args = ("--system", "abc\udcff", "hi") if flag else ("abc\udcff",)
    result = run_cli("chat", "-m", str(smollm2_path), *PINNED_FLAGS, "--save", *args, env={"LLAMADESK_HOME": str(home)})
    assert_one_clear_line(result, 2, "not UTF-8")
    store = stored(home)
    assert store.conversations() == []
    store.close()


def test_a_model_file_name_that_is_not_utf8_is_one_line(home, smollm2_path, tmp_path):
    import os

    odd = Path(os.fsdecode(bytes(tmp_path) + b"/mod\xe9le.gguf"))
    os.symlink(smollm2_path, odd)
    result = run_cli(
        "chat", "-m", str(odd), *PINNED_FLAGS, "--max-tokens", "2", "hi", env={"LLAMADESK_HOME": str(home)}
    )
    assert_one_clear_line(result, 2, "not UTF-8")


def test_a_reader_that_goes_away_keeps_what_was_said(home, smollm2_path):
    # `chat --save ... | head -c 5`: exit 0 with an empty "interrupted" reply stored.
    import os

    process = saving_chat_process(home, smollm2_path, "Write a long story about a dragon.", 200)
    first = os.read(process.stdout.fileno(), 5)
    process.stdout.close()
    process.communicate(timeout=120)
    store = stored(home)
    [conversation] = store.conversations()
    question, reply = store.messages(conversation.id)
    store.close()
    assert reply.state == "interrupted" and reply.content.startswith(first.decode(errors="ignore"))
    assert len(reply.content) >= len(first)


def test_ctrl_c_while_the_question_is_read_takes_it_back(home, smollm2_path):
    # The question stayed (with an empty reply the model never sees), so the next --continue read
    # it again: the long read Ctrl-C had stopped.
    import signal
    import time

    long_question = "the quick brown fox jumps over the lazy dog. " * 600  # ~6,000 tokens: seconds to read
    process = saving_chat_process(home, smollm2_path, long_question, 4)
    time.sleep(2.0)  # loaded and reading the prompt
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert out.strip() == b""  # stopped before the reply's first word
    store = stored(home)
    assert store.conversations() == []  # --save's conversation went with its only question
    store.close()


def test_a_conversation_past_its_context_reads_only_the_new_turn_when_continued(home, smollm2_path):
    # Each `--continue` started from the first message, dropped turns anew and read the whole
    # window again (16-20 tokens from the prompt cache); the memory start is now stored.
    import re

    small = ("--ctx", "256")
    chat(home, smollm2_path, *small, "--save", "Tell me about cats.", tokens=40)
    reused_after_a_drop = []
    dropped = False
    for part in range(1, 7):
        result = chat(home, smollm2_path, *small, "--continue", f"Tell me more, part {part}.", tokens=40)
        cached = int(re.search(r"\((\d+) cached", result.stderr)[1])
        if "no longer sees" in result.stderr:
            dropped = True
        elif dropped:
            reused_after_a_drop.append(cached)
    assert reused_after_a_drop and min(reused_after_a_drop) > 150, reused_after_a_drop
    store = stored(home)
    [conversation] = store.conversations()
    assert conversation.memory_start_id is not None
    store.close()


def test_a_new_cli_conversation_starts_from_config_json_as_in_the_app(home, smollm2_path):
    # The CLI used its built-in defaults, and a bad config.json did not stop it (the README says both).
    (home / "config").mkdir(exist_ok=True)
    config = home / "config" / "config.json"
    config.write_text(json.dumps({"system_prompt": "Always answer in French.", "temperature": 0, "max_tokens": 5}))
    run = run_cli("chat", "-m", str(smollm2_path), *PINNED_FLAGS, "--save", "hi", env={"LLAMADESK_HOME": str(home)})
    assert run.returncode == 0, run.stderr
    store = stored(home)
    [conversation] = store.conversations()
    settings = conversation.settings
    assert (settings.system_prompt, settings.temperature, settings.max_tokens) == ("Always answer in French.", 0, 5)
    store.close()
    config.write_text(json.dumps({"temperature": 7}))
    refused = run_cli("chat", "-m", str(smollm2_path), *PINNED_FLAGS, "hi", env={"LLAMADESK_HOME": str(home)})
    assert_one_clear_line(refused, 2, "temperature")


def test_a_stored_adapter_that_is_gone_is_named_and_lora_none_goes_on_without_it(home, smollm2_path):
    # "no such file; give a path to a .gguf file", naming neither the conversation nor a way on.
    chat(home, smollm2_path, "--save", "Hello!", tokens=2)
    store = stored(home)
    [conversation] = store.conversations()
    store.update_settings(conversation.id, replace(conversation.settings, adapters=(("/nowhere/a.gguf", 1.0),)))
    env = {"LLAMADESK_HOME": str(home)}
    common = ("-m", str(smollm2_path), *PINNED_FLAGS, *PINNED_SAMPLING_FLAGS, "--max-tokens", "2", "--continue")
    refused = run_cli("chat", *common, "More?", env=env)
    assert_one_clear_line(refused, 2, f"conversation {conversation.id} applies the LoRA adapter /nowhere/a.gguf")
    assert run_cli("chat", *common, "--lora", "none", "More?", env=env).returncode == 0
    both = run_cli("chat", *common, "--lora", "none", "--lora", "x.gguf", "More?", env=env)
    assert_one_clear_line(both, 2, "--lora none means no adapter")
    store.close()


# In a child: the file-size limit is per process. It stands for the disk filling up under the store
# at one point of the turn (as in test_store.py's STORE_FILLING_UP); disk_usage says the disk is full.
CHAT_ON_A_DISK_FILLING_UP = """
import json, resource, sys
from collections import namedtuple
from pathlib import Path
from llamadesk.app import cli
from llamadesk.app.chat import store as store_module, stored_chat
from llamadesk.app.chat.stored_chat import StoredChat
data, when, argv = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
usage = namedtuple("usage", "total used free")
store_module.shutil.disk_usage = lambda _folder: usage(10**9, 10**9, 0)
stored_chat.SAVE_INTERVAL_S = 0.0  # the reply is rewritten with every piece


def fill_the_disk():
    # SQLite appends every change to the store's WAL: no write may go past its end now (EFBIG).
    wal = data / "conversations.sqlite3-wal"
    resource.setrlimit(resource.RLIMIT_FSIZE, (wal.stat().st_size if wal.exists() else 0, resource.RLIM_INFINITY))


def wrap(name, before=False, after_saves=0):
    original, saves = getattr(StoredChat, name), []

    def wrapped(self, *args, **kwargs):
        if before:
            fill_the_disk()
        result = original(self, *args, **kwargs)
        saves.append(1)
        if not before and len(saves) == after_saves:
            fill_the_disk()
        return result

    setattr(StoredChat, name, wrapped)


if when == "before the question":
    wrap("add_question", before=True)
elif when == "before the reply":
    wrap("start_reply", after_saves=1)
else:
    wrap("reply_grew", after_saves=3)
sys.exit(cli.main(argv))
"""


@pytest.mark.parametrize(
    ("when", "says"),
    [
        ("before the question", "neither the question nor any of the reply was saved"),
        ("before the reply", "the question was saved but none of the reply"),
        ("mid-reply", "the reply was saved up to where it stopped"),
    ],
)
def test_a_disk_that_fills_during_a_one_shot_chat_says_what_was_saved(home, smollm2_path, when, says):
    # It said "the reply was not saved" also when the part streamed before the disk filled was
    # stored (marked interrupted), and the store's notice ("kept until you quit") came first.
    import subprocess
    import sys

    chat(home, smollm2_path, "--save", "Hello!", tokens=4)
    argv = ["chat", "-m", str(smollm2_path), *PINNED_FLAGS, *PINNED_SAMPLING_FLAGS, "--max-tokens", "24"]
    argv += ["--continue", "Tell me a story about a dragon."]
    data = home / "data"
    done = subprocess.run(
        [sys.executable, "-c", CHAT_ON_A_DISK_FILLING_UP, str(data), when, json.dumps(argv)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LLAMADESK_HOME": str(home)},
    )
    assert_one_clear_line(done, 1, f"{data / 'conversations.sqlite3'} cannot be written", says, "free some space")
    store = stored(home)
    hello, answer, *turn = store.messages(1)
    store.close()
    assert (hello.content, answer.state) == ("Hello!", "complete")
    if when == "before the question":
        assert turn == []
        return
    question, reply = turn
    assert question.content == "Tell me a story about a dragon." and reply.state == "interrupted"
    if when == "before the reply":
        assert reply.content == ""
    else:  # what was saved before the disk filled: the start of what was said, not all of it
        assert reply.content and done.stdout.startswith(reply.content) and len(reply.content) < len(done.stdout)
        assert f"{len(reply.content)} of {len(done.stdout.rstrip())} characters" in done.stderr


ALTERNATING_TEMPLATE = (
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' -%}{{ '<|im_start|>system\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- else -%}"
    "{%- if (m['role'] == 'user') != ((loop.index0 - (1 if messages[0]['role'] == 'system' else 0)) % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def test_a_question_left_without_a_reply_does_not_stop_the_conversation(home, smollm2_path, tmp_path):
    """A process killed while it read a long question (SIGKILL: nothing can take it back) leaves it
    stored with an empty reply, or with none. Sent on with the next question, that made two
    questions in a row, which a template that wants turns to alternate (Gemma's, Mistral's) refuses:
    the conversation could never be continued. It is left out with its empty reply."""
    from gguf import GGUFValueType

    from llamadesk.app.chat.stored_chat import answered
    from tests.gguf_copy import copy_with_key

    model = copy_with_key(
        smollm2_path,
        tmp_path / "alternating.gguf",
        "tokenizer.chat_template",
        GGUFValueType.STRING,
        ALTERNATING_TEMPLATE,
    )
    chat(home, model, "--save", "What is the capital of France?")
    store = stored(home)
    store.add_message(1, "user", "Summarize this long text: ...")
    store.add_message(1, "assistant", "", "interrupted")  # killed while the question was read
    follow_up = chat(home, model, "--continue", "And of Spain?")
    assert follow_up.stdout.strip()
    store.add_message(1, "user", "A question whose reply was never stored")  # killed before it was
    assert chat(home, model, "--continue", "And of Italy?").stdout.strip()
    messages = store.messages(1)
    told = answered(messages)
    assert [m.role for m in told] == ["user", "assistant"] * 3
    assert "Summarize" not in " ".join(m.content for m in told) and len(messages) == 9
    store.close()
