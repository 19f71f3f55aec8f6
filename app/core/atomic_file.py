"""Write a file under a temporary name and rename it into place only when it is complete.

Every llamadesk output goes through here, so an interrupted download, conversion or translation
never leaves a half-written file under the final name, and an existing file is never replaced
unless the caller says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from llamadesk.app.core.errors import BadInputError


def check_writable_target(path: Path, force: bool) -> None:
    """Refuse an output path that exists (unless forced) or whose folder cannot be written.

    What --force cannot help with is said first: "pass --force" for a folder led to a second error.
    """
    if path.is_dir():
        raise BadInputError(f"{path} is a folder; give a file name for the output")
    if path.exists() and not path.is_file():
        # os.replace would put the output in place of a device or FIFO (as root, /dev/null itself)
        raise BadInputError(f"{path} is not a regular file (a device, FIFO or socket); give a file name for the output")
    if path.exists() and not force:
        raise BadInputError(f"{path} already exists; pass --force to overwrite it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise BadInputError(f"folder {parent} does not exist; create it or choose another output")
    if not os.access(parent, os.W_OK):
        raise BadInputError(f"folder {parent} is not writable; choose another output")


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


@contextlib.contextmanager
def atomic_output(path: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success rename it to `path`, on any error remove it."""
    check_writable_target(path, force)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
