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

Something else in the lock file's place (a symbolic link, a FIFO, a folder, a file with other
links or more than a pid in it) was never put there by llamadesk, and is never written: through a
link, the pid went into the start of whatever file it pointed to, and a FIFO failed with "Illegal
seek". The turn is refused in one line that names it: unlike a file system without locks, it has
a remedy (remove it), and going on unlocked would leave the conversation unguarded for good.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from llamadesk.app.chat.store import Store
from llamadesk.app.core.atomic_file import hidden_name
from llamadesk.app.core.errors import LlamadeskError

PID_BYTES = 20  # the pid, padded: each write replaces the whole of the last one, never half of it
MAX_TRIES = 50  # locks of a file its holder removed meanwhile, before giving up (never seen past 2)


class TurnTaken(LlamadeskError):
    """Another llamadesk (or another window of this one) is taking a turn in the conversation."""


class TurnLockNotOurs(TurnTaken):
    """Something llamadesk did not make is in the turn lock's place. A TurnTaken, so that every
    caller refuses the turn with this line as it does when another llamadesk holds it."""


# What opening the lock file says when the name holds a symbolic link (O_NOFOLLOW), a folder, or a
# socket (ENXIO): not our file, rather than no file.
NOT_A_FILE_ERRORS = {errno.ELOOP, errno.EISDIR, errno.ENXIO, getattr(errno, "EMLINK", -1), getattr(errno, "EFTYPE", -1)}


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
            # Never through a link; a FIFO opens at once instead of waiting for a writer.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as err:
            if err.errno in NOT_A_FILE_ERRORS:
                raise _not_ours(conversation_id, path) from None
            return TurnLock()
        if not _is_a_lock_file(fd):
            os.close(fd)
            raise _not_ours(conversation_id, path)
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


def _is_a_lock_file(fd: int) -> bool:
    """Whether `fd` is a file such as claim_turn makes: regular, with no other name (a hard link to
    a file elsewhere would have it written), and no longer than a pid. No name at all is fine: its
    holder removed it as it was opened, which claim_turn notices once it is locked."""
    found = os.fstat(fd)
    return stat.S_ISREG(found.st_mode) and found.st_nlink <= 1 and found.st_size <= PID_BYTES


def _not_ours(conversation_id: int, path: Path) -> TurnLockNotOurs:
    return TurnLockNotOurs(
        f"conversation {conversation_id}'s turn lock {path} is not a file llamadesk made (a link, a FIFO or "
        "another file is in its place); remove it, then try again"
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
