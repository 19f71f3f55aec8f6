"""One turn at a time in a stored conversation (app/chat/turn_lock.py): a second llamadesk that
wants a turn where one is being taken fails at once in one line, reading is never held up, and a
process killed mid-turn leaves nothing in the way of the next one.

Real processes (`llamadesk chat --continue` with the starter model, held mid-reply with SIGSTOP for
as long as the test needs), a real store; every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from llamadesk.app.chat.store import ConversationSettings, Store
from llamadesk.app.chat.turn_lock import TurnTaken, claim_turn, turn_lock_path
from tests.conftest import LLAMADESK, PINNED_FLAGS, PINNED_SAMPLING_FLAGS, one_line_error, run_cli, run_cli_process


def taken(conversation: int, pid: int) -> str:
    return (
        f"conversation {conversation} is taking a turn in another llamadesk (pid {pid}); wait for it to finish, "
        "or continue another conversation"
    )


def chat_args(model: Path, tokens: int, *args: str) -> list[str]:
    return ["chat", "-m", str(model), *PINNED_FLAGS, *PINNED_SAMPLING_FLAGS, "--max-tokens", str(tokens), *args]


def first_words(process: subprocess.Popen, at_least: int = 40) -> bytes:
    """What the process has printed once its reply streams (at least `at_least` bytes)."""
    said = b""
    deadline = time.monotonic() + 120
    while len(said) < at_least and time.monotonic() < deadline and process.poll() is None:
        said += os.read(process.stdout.fileno(), 4096)
    assert len(said) >= at_least, (process.poll(), said)
    return said


def test_a_claim_is_refused_while_another_holds_it_and_free_once_released(tmp_path):
    path = tmp_path / "conversations.sqlite3"
    mine, other = Store(path), Store(path)  # two connections, as two processes have
    try:
        one = mine.new_conversation("one", ConversationSettings())
        two = mine.new_conversation("two", ConversationSettings())
        turn_lock_path(path, one.id).write_text("999999\n")  # left by a process killed mid-turn
        with claim_turn(mine, one.id) as held:
            assert held.held
            with pytest.raises(TurnTaken) as refused:
                claim_turn(other, one.id)
            assert str(refused.value) == taken(one.id, os.getpid())
            claim_turn(other, two.id).release()  # another conversation is free meanwhile
            assert [c.id for c in other.conversations()] == [two.id, one.id]  # reading waits for no turn
        assert not turn_lock_path(path, one.id).exists()
        claim_turn(other, one.id).release()
    finally:
        mine.close()
        other.close()


def test_a_second_continue_fails_at_once_while_one_replies_and_a_killed_one_leaves_nothing(tmp_path, smollm2_path):
    # Both read the history and both appended a question and a reply: interleaved turns, each
    # reply answering a history that was not the stored one.
    env = {"LLAMADESK_HOME": str(tmp_path)}
    assert run_cli(*chat_args(smollm2_path, 4, "--save", "Hello!"), env=env).returncode == 0
    store_path = tmp_path / "data" / "conversations.sqlite3"
    story = "Write a very long story about a dragon."
    first = subprocess.Popen(
        [str(LLAMADESK), *chat_args(smollm2_path, 2000, "--continue", story)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    try:
        first_words(first)
        first.send_signal(signal.SIGSTOP)  # mid-reply, for as long as the test needs
        started = time.monotonic()
        second = run_cli_process(*chat_args(smollm2_path, 4, "--continue", "And then?"), env=env, timeout=60)
        assert one_line_error(second, 1) == f"llamadesk: {taken(1, first.pid)}"
        assert time.monotonic() - started < 30  # at once, not after waiting for the other
        listing = run_cli_process("chat", "--list", env=env, timeout=60)
        assert listing.returncode == 0 and "Hello!" in listing.stdout, listing.stderr
        first.send_signal(signal.SIGKILL)  # a crash mid-turn: the OS releases the lock
        assert first.wait(timeout=60) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=60)
    assert turn_lock_path(store_path, 1).exists()  # left behind, and in no one's way
    third = run_cli_process(*chat_args(smollm2_path, 4, "--continue", "And then?"), env=env, timeout=120)
    assert third.returncode == 0, third.stderr
    assert not turn_lock_path(store_path, 1).exists()
    store = Store(store_path)
    messages = store.messages(1)
    store.close()
    assert [(m.role, m.state) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "interrupted"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert [messages[2].content, messages[4].content] == [story, "And then?"]
