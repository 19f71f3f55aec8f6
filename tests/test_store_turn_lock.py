"""What is in the place of a conversation's turn lock file when llamadesk did not put it there.

claim_turn opened the name with O_RDWR | O_CREAT and wrote its pid at offset 0: through a symbolic
link the pid went into the first 20 bytes of the file it pointed to (anywhere the user can write),
and a FIFO failed with "Illegal seek", exit 1. Now nothing but a lock file of llamadesk's is
opened for writing; anything else refuses the turn in one line that names it.
"""

from __future__ import annotations

import os
import threading

import pytest

from llamadesk.app.chat.store import ConversationSettings, Store
from llamadesk.app.chat.turn_lock import PID_BYTES, TurnLockNotOurs, TurnTaken, claim_turn, turn_lock_path
from tests.conftest import assert_one_clear_line, run_cli

VICTIM_TEXT = b"someone else's file, whose first bytes must stay as they are\n"


@pytest.fixture
def store(tmp_path):
    (tmp_path / "data").mkdir()
    opened = Store(tmp_path / "data" / "conversations.sqlite3")
    opened.new_conversation("a conversation", ConversationSettings())
    yield opened
    opened.close()


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "elsewhere" / "victim.txt"
    path.parent.mkdir()
    path.write_bytes(VICTIM_TEXT)
    return path


def _refused(store, lock):
    with pytest.raises(TurnLockNotOurs) as refused:
        claim_turn(store, 1)
    line = str(refused.value)
    assert isinstance(refused.value, TurnTaken)  # every caller refuses the turn with this line
    assert str(lock) in line and "remove it" in line and "\n" not in line
    return line


def test_a_symbolic_link_in_the_locks_place_is_refused_and_never_written_through(store, victim):
    lock = turn_lock_path(store.path, 1)
    lock.symlink_to(victim)
    _refused(store, lock)
    assert victim.read_bytes() == VICTIM_TEXT
    assert lock.is_symlink()  # left for the user to look at and remove


def test_a_link_to_nowhere_is_refused_without_making_its_target(store, tmp_path):
    lock = turn_lock_path(store.path, 1)
    target = tmp_path / "elsewhere" / "made-by-llamadesk"
    target.parent.mkdir()
    lock.symlink_to(target)
    _refused(store, lock)
    assert not target.exists()


def test_a_hard_link_to_another_file_is_refused_and_never_written(store, victim):
    lock = turn_lock_path(store.path, 1)
    os.link(victim, lock)
    _refused(store, lock)
    assert victim.read_bytes() == VICTIM_TEXT


def test_a_file_longer_than_a_pid_is_not_a_lock_and_is_not_written(store):
    lock = turn_lock_path(store.path, 1)
    lock.write_bytes(VICTIM_TEXT)
    _refused(store, lock)
    assert lock.read_bytes() == VICTIM_TEXT


def test_a_fifo_in_the_locks_place_is_refused_at_once(store):
    lock = turn_lock_path(store.path, 1)
    os.mkfifo(lock)
    done = threading.Event()

    def unblock_if_it_waits():  # an open that waited for a writer would hang the test otherwise
        if not done.wait(10):
            fd = os.open(lock, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)

    threading.Thread(target=unblock_if_it_waits, daemon=True).start()
    try:
        _refused(store, lock)
    finally:
        done.set()


def test_a_folder_in_the_locks_place_is_refused(store):
    lock = turn_lock_path(store.path, 1)
    lock.mkdir()
    _refused(store, lock)


def test_a_lock_file_left_by_a_killed_holder_is_still_taken(store):
    lock = turn_lock_path(store.path, 1)
    lock.write_bytes(f"{99999999:<{PID_BYTES - 1}}\n".encode())  # what claim_turn writes
    with claim_turn(store, 1) as turn:
        assert turn.held and lock.read_bytes().decode().strip() == str(os.getpid())
    assert not lock.exists()


def test_chat_continue_with_a_link_in_the_locks_place_is_one_line_and_writes_nothing(store, victim, tmp_path):
    lock = turn_lock_path(store.path, 1)
    lock.symlink_to(victim)
    result = run_cli("chat", "--continue", "Hi", env={"LLAMADESK_HOME": str(tmp_path)})
    assert_one_clear_line(result, 1, str(lock), "remove it")
    assert victim.read_bytes() == VICTIM_TEXT
    assert [m.content for m in store.messages(1)] == []  # the question was not stored either
