"""Write a file under a temporary name and rename it into place only when it is complete.

Every llamadesk output goes through here, so an interrupted download, conversion or translation
never leaves a half-written file under the final name, and an existing file is never replaced
unless the caller says so.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from llamadesk.app.core.errors import BadInputError, LlamadeskError


def _a_folder(path: Path) -> BadInputError:
    return BadInputError(f"{path} is a folder; give a file name for the output")


def _already_exists(path: Path) -> BadInputError:
    return BadInputError(f"{path} already exists; pass --force to overwrite it")


@dataclass(frozen=True)
class UnwritableFolder:
    """What to say when an output's folder cannot be written: what to do about it, and whose the
    folder is. One the user named is bad input (exit 2); one llamadesk keeps its own files in
    (library.json, config.json, the Hub cache's refs) is a failing environment (exit 1), where
    "choose another output" has nothing to choose."""

    remedy: str
    error: type[LlamadeskError] = BadInputError


CHOOSE_ANOTHER_OUTPUT = UnwritableFolder("choose another output")


def check_writable_target(path: Path, force: bool, unwritable: UnwritableFolder = CHOOSE_ANOTHER_OUTPUT) -> None:
    """Refuse an output path that exists (unless forced) or whose folder cannot be written.

    What --force cannot help with is said first: "pass --force" for a folder led to a second error.
    """
    if path.is_dir():
        raise _a_folder(path)
    if path.exists() and not path.is_file():
        # os.replace would put the output in place of a device or FIFO (as root, /dev/null itself)
        raise BadInputError(f"{path} is not a regular file (a device, FIFO or socket); give a file name for the output")
    if path.exists() and not force:
        raise _already_exists(path)
    parent = _folder_of(path)
    if not parent.is_dir():
        raise unwritable.error(f"folder {parent} does not exist; create it or {unwritable.remedy}")
    if not os.access(parent, os.W_OK):
        raise unwritable.error(f"folder {parent} is not writable; {unwritable.remedy}")


NAME_MAX = 255  # bytes in one file name on Linux, macOS and Windows file systems


def hidden_name(path: Path, suffix: str) -> Path:
    """A hidden file beside `path` for work on it: `.NAME` + `suffix`, within the file-name limit.

    A target whose name is near the limit is shortened here (its start, and a hash of the whole
    name so that two long names stay apart): the added dot and suffix once pushed a valid
    250-character name past it, and the write failed, naming a file the user never chose.
    """
    name = path.name
    if len(os.fsencode(f".{name}{suffix}")) > NAME_MAX:
        digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:12]
        room = NAME_MAX - len(os.fsencode(f".~{digest}{suffix}"))
        start = os.fsencode(name)[:room].decode("utf-8", "ignore")  # whole characters only
        name = f"{start}~{digest}"
    return path.with_name(f".{name}{suffix}")


def temporary_name(path: Path) -> Path:
    """The name a file is written under before it is complete: hidden, beside the target."""
    return hidden_name(path, f".{os.getpid()}.part")


# Where a file system has no hard links (FAT, some network and FUSE mounts) os.link says one of these.
NO_HARD_LINKS = {errno.EPERM, errno.EXDEV, getattr(errno, "ENOTSUP", -1), getattr(errno, "EOPNOTSUPP", -1)}


@contextlib.contextmanager
def atomic_output(
    path: Path, force: bool = False, unwritable: UnwritableFolder = CHOOSE_ANOTHER_OUTPUT
) -> Iterator[Path]:
    """Yield a temporary path to write; on success rename it to `path`, on any error remove it.

    Unless forced, a file that appears under `path` while the temporary is written (a second run
    with the same output) is never replaced: the finished file is published with a hard link,
    which fails when the name exists, rather than checked for once at the start. `unwritable`
    says what to do about a folder that cannot be written.
    """
    check_writable_target(path, force, unwritable)
    remove_abandoned_temporaries(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        if force:
            os.replace(tmp, path)
        else:
            _publish_new(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(err, OSError):
            said = no_room_error(err, path) or _folder_refused(err, tmp, unwritable) or _folder_in_place(err, path)
            if said is not None:
                raise said from None
        raise


def _folder_refused(err: OSError, tmp: Path, unwritable: UnwritableFolder) -> LlamadeskError | None:
    """check_writable_target's line when the temporary could not be made although os.access said
    it could (ACLs, root without its override): the bare error named the hidden temporary."""
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and err.filename is not None:
        if os.fspath(err.filename) == os.fspath(tmp):
            return unwritable.error(f"folder {_folder_of(tmp)} is not writable; {unwritable.remedy}")
    return None


def _folder_in_place(err: OSError, path: Path) -> BadInputError | None:
    """check_writable_target's line for a folder made under `path` while the output was written:
    the rename's error named the hidden temporary."""
    if err.errno == errno.EISDIR and path.is_dir():
        return _a_folder(path)
    return None


def _folder_of(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def no_room_error(err: OSError, path: Path) -> LlamadeskError | None:
    """One line naming `path` when `err` says the file did not fit where it was written; else None.

    A write through a file object names no file: a full disk under convert, translate -o or
    library.json said "the disk is full (while writing)", and a file-size limit "File too large".
    """
    if err.errno == errno.ENOSPC:
        return LlamadeskError(f"the disk is full: {path} could not be written; free some space and try again")
    if err.errno == getattr(errno, "EDQUOT", None):
        return LlamadeskError(f"your disk quota is used up: {path} could not be written; free some space and try again")
    if err.errno == errno.EFBIG:
        return LlamadeskError(
            f"{path} could not be written: it grew past the largest file this process may write (`ulimit -f`) "
            "or its file system holds (FAT32: 4 GiB); raise the limit or write it to another disk"
        )
    return None


def _publish_new(tmp: Path, path: Path) -> None:
    """Give the finished temporary the name `path`, which must not exist (BadInputError if it does)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise _already_exists(path) from None
    except OSError as err:
        if err.errno not in NO_HARD_LINKS:
            raise
        # No hard links here: check again just before the rename (a narrow window, not the whole write).
        if path.exists() or path.is_symlink():
            raise _already_exists(path) from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def remove_abandoned_temporaries(path: Path) -> None:
    """Remove `.NAME.<pid>.part` files beside `path` that a process no longer running left.

    A killed quantize or convert leaves its temporary behind (hundreds of MB, hidden); the next
    write to the same name clears it. A temporary whose process still runs is another write in
    progress, and stays.
    """
    parent = path.parent if str(path.parent) else Path(".")
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for entry in entries:
        match = PART_NAME.fullmatch(entry.name)
        if match is None:
            continue
        pid = int(match.group(1))
        # The name must be this target's temporary for that pid (so a long name's shortened form too).
        if pid == os.getpid() or hidden_name(path, f".{pid}.part").name != entry.name or process_running(pid):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)


PART_NAME = re.compile(r"\..*\.([0-9]{1,10})\.part", re.DOTALL)


def process_running(pid: int) -> bool:
    """Whether process `pid` runs on this machine; True when that cannot be told (never remove in doubt)."""
    if os.name == "nt":
        return True  # os.kill there would end the process, not ask about it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True  # PermissionError: it runs, as another user
    return True


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (a hidden `.NAME.lock` beside it) for a read-modify-write.

    Two processes that each read a file, change it and write it whole lose one change (four
    `models add` at once kept three folders); done under this lock, the second reads what the first
    wrote. Advisory (only llamadesk takes it), released when the process dies. Where there is no
    fcntl (Windows), or the lock file cannot be made (a read-only folder, whose write fails anyway
    and says so), the edit goes ahead unlocked.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:
        # Never through a link (a dangling one had its target created); a FIFO opens at once.
        fd = os.open(hidden_name(path, ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
