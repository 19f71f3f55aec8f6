"""One turn at a time in a stored conversation, across processes.

A turn reads the conversation's history, stores a question and stores the reply as it streams.
Two llamadesks taking turns in one conversation at once (`chat --continue` twice, the app and the
CLI) each answered a history the other was changing, and the conversation ended with interleaved
questions and replies. So a turn holds its conversation's lock from reading the history until the
reply's end is stored: an OS file lock (flock) on a small file beside the store,
`.conversations.sqlite3.turn-ID.lock`, which the OS releases when the process dies, so a crash
leaves nothing to clean up and nothing stale to judge. The file holds the holder's pid, for the
line the other one gets, and is removed when the turn ends. Reading (listing, showing,
exporting) takes no lock.

The second one fails at once rather than after a wait: a turn lasts as long as its reply (seconds,
minutes on a Pi), so a short wait would mostly give the same answer later, and a long one would
look like a hang; the line says what to do instead.

Where there is no fcntl (Windows) or the file cannot be made or locked (a file system without
locks), the turn goes ahead unlocked, as core/atomic_file.locked does; a store kept in memory
needs none (nothing of it is shared).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from llamadesk.app.chat.store import Store
from llamadesk.app.core.atomic_file import hidden_name
from llamadesk.app.core.errors import LlamadeskError

PID_BYTES = 20  # the pid, padded: each write replaces the whole of the last one, never half of it
MAX_TRIES = 50  # locks of a file its holder removed meanwhile, before giving up (never seen past 2)


class TurnTaken(LlamadeskError):
    """Another llamadesk (or another window of this one) is taking a turn in the conversation."""


def turn_lock_path(store_path: Path, conversation_id: int) -> Path:
    return hidden_name(store_path, f".turn-{conversation_id}.lock")


class TurnLock:
    """A conversation's turn, held until release() (or the process ends)."""

    def __init__(self, fd: int | None = None, path: Path | None = None):
        self._fd = fd
        self._path = path

    @property
    def held(self) -> bool:
        """Whether a lock is held (False where turns go unlocked: see the module docstring)."""
        return self._fd is not None

    def release(self) -> None:
        """End the turn (once; again does nothing). The file goes first, while still locked, so
        that no one locks a file that is about to disappear (claim_turn checks for that too)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._path)
        os.close(fd)  # closing releases the lock

    def __enter__(self) -> TurnLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def claim_turn(store: Store, conversation_id: int) -> TurnLock:
    """The turn in conversation `conversation_id` of `store`; TurnTaken at once if another
    llamadesk is taking one there."""
    if store.not_saved is not None:
        return TurnLock()
    try:
        import fcntl
    except ImportError:
        return TurnLock()
    path = turn_lock_path(store.path, conversation_id)
    for _ in range(MAX_TRIES):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return TurnLock()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            os.close(fd)
            raise _taken(conversation_id, pid) from None
        except OSError:  # no locks on this file system
            os.close(fd)
            return TurnLock()
        if _is_the_file_at(fd, path):
            os.pwrite(fd, f"{os.getpid():<{PID_BYTES - 1}}\n".encode(), 0)
            return TurnLock(fd, path)
        os.close(fd)  # its holder removed it as we locked it: lock the one there now
    raise _taken(conversation_id, None)


def _taken(conversation_id: int, pid: int | None) -> TurnTaken:
    who = f"another llamadesk (pid {pid})" if pid is not None else "another llamadesk"
    return TurnTaken(
        f"conversation {conversation_id} is taking a turn in {who}; wait for it to finish, or continue another "
        "conversation"
    )


def _holder(fd: int) -> int | None:
    """The pid the lock's holder wrote, if it has yet."""
    try:
        text = os.pread(fd, PID_BYTES, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _is_the_file_at(fd: int, path: Path) -> bool:
    try:
        there = os.stat(path)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)
