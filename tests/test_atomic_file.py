"""app/core/atomic_file.py: outputs written under a temporary name and renamed when complete."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llamadesk.app.core.atomic_file import (
    NAME_MAX,
    UnwritableFolder,
    atomic_output,
    check_writable_target,
    hidden_name,
    locked,
    temporary_name,
)
from llamadesk.app.core.errors import BadInputError, LlamadeskError


def write(path: Path, text: str, force: bool = False) -> None:
    with atomic_output(path, force) as tmp:
        tmp.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("name", ["a" * 250 + ".gguf", "é" * 125 + ".po", "x" * 255])
def test_a_name_near_the_limit_is_written(tmp_path, name):
    # The dot, process id and ".part" once pushed a valid 250-character name past the file
    # system's 255 bytes: the write failed, naming a temporary file the user never chose.
    target = tmp_path / name
    assert len(os.fsencode(temporary_name(target).name)) <= NAME_MAX
    write(target, "done")
    assert target.read_text(encoding="utf-8") == "done" and list(tmp_path.iterdir()) == [target]


def test_long_names_that_differ_only_at_the_end_get_different_temporary_names(tmp_path):
    first, second = tmp_path / ("a" * 250 + "1.gguf"), tmp_path / ("a" * 250 + "2.gguf")
    assert temporary_name(first) != temporary_name(second)
    assert temporary_name(tmp_path / "short.gguf").name == f".short.gguf.{os.getpid()}.part"


def test_an_interrupted_write_leaves_nothing(tmp_path):
    target = tmp_path / ("b" * 252)
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_names_the_output_and_keeps_the_previous_file(tmp_path):
    # A write through a file object names no file: the CLI said "the disk is full (while writing)".
    target = tmp_path / "out.po"
    target.write_text("the good one", encoding="utf-8")
    with pytest.raises(LlamadeskError) as err, atomic_output(target, force=True) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert str(err.value) == f"the disk is full: {target} could not be written; free some space and try again"
    assert target.read_text(encoding="utf-8") == "the good one" and list(tmp_path.iterdir()) == [target]


# Run in a child: the limit is per process, and pytest must go on writing its own files.
PAST_THE_FILE_SIZE_LIMIT = """
import resource, sys
from pathlib import Path
from llamadesk.app.core.atomic_file import atomic_output
from llamadesk.app.core.errors import LlamadeskError
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # Python ignores SIGXFSZ: writes fail with EFBIG
try:
    with atomic_output(Path(sys.argv[1]), force=True) as tmp:
        tmp.write_bytes(b"x" * 10_000)
except LlamadeskError as err:
    print(err)
"""


def test_a_file_size_limit_names_the_output_and_keeps_the_previous_file(tmp_path):
    target = tmp_path / "model.gguf"
    target.write_bytes(b"the good one")
    done = subprocess.run(
        [sys.executable, "-c", PAST_THE_FILE_SIZE_LIMIT, str(target)], capture_output=True, text=True, timeout=60
    )
    assert done.stderr == "" and done.stdout.strip() == (
        f"{target} could not be written: it grew past the largest file this process may write (`ulimit -f`) "
        "or its file system holds (FAT32: 4 GiB); raise the limit or write it to another disk"
    )
    assert target.read_bytes() == b"the good one" and list(tmp_path.iterdir()) == [target]


def test_a_temporary_the_folder_refuses_is_the_folders_line_not_the_temporarys_name(tmp_path):
    # os.access can say yes where the write then fails (ACLs, root without its override): the line
    # named the hidden `.out.txt.PID.part` the user never chose.
    own_folder = UnwritableFolder("do this", LlamadeskError)
    with pytest.raises(LlamadeskError) as err, atomic_output(tmp_path / "out.txt", unwritable=own_folder) as tmp:
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp))
    assert type(err.value) is LlamadeskError and str(err.value) == f"folder {tmp_path} is not writable; do this"


def test_a_folder_made_in_the_outputs_place_during_the_write_is_named_not_the_temporary(tmp_path):
    # The rename's error named the hidden `.out.txt.PID.part`: "Is a directory: .out.txt.123.part".
    target = tmp_path / "out.txt"
    with pytest.raises(BadInputError) as err, atomic_output(target, force=True) as tmp:
        tmp.write_text("done", encoding="utf-8")
        target.mkdir()
    assert str(err.value) == f"{target} is a folder; give a file name for the output"
    assert list(tmp_path.iterdir()) == [target] and list(target.iterdir()) == []


def test_other_write_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(OSError) as err, atomic_output(tmp_path / "out.txt") as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise OSError(errno.EIO, "Input/output error")
    assert err.value.errno == errno.EIO and list(tmp_path.iterdir()) == []


def test_a_device_or_fifo_is_never_replaced_even_with_force(tmp_path):
    # As root, `convert ... -o /dev/null --force` replaced the device node with a regular file.
    with pytest.raises(BadInputError, match="is not a regular file"):
        write(Path("/dev/null"), "x", force=True)
    assert Path("/dev/null").is_char_device()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(BadInputError, match="is not a regular file"):
        write(fifo, "x", force=True)
    assert not fifo.is_file() and sorted(tmp_path.iterdir()) == [fifo]


def test_an_existing_file_needs_force(tmp_path):
    target = tmp_path / "out.txt"
    write(target, "first")
    with pytest.raises(BadInputError, match="pass --force"):
        write(target, "second")
    write(target, "second", force=True)
    assert target.read_text(encoding="utf-8") == "second"


def test_the_files_beside_an_output_fit_too(tmp_path):
    from llamadesk.app.core.atomic_file import hidden_name
    from llamadesk.app.translate.resume import sidecar_path

    target = tmp_path / ("c" * 250 + ".po")
    for beside in (hidden_name(target, ".unquantized.gguf"), sidecar_path(target)):
        assert len(os.fsencode(beside.name)) <= NAME_MAX and beside.parent == tmp_path
        beside.write_text("ok", encoding="utf-8")  # the file system takes the name
    assert sidecar_path(tmp_path / "fr.po").name == ".fr.po.translation.jsonl", "short names as before"


def test_a_folder_or_device_is_named_before_force_is_suggested(tmp_path):
    """Saying "pass --force" for a folder led to a second error: what --force cannot fix comes first."""
    (tmp_path / "out").mkdir()
    with pytest.raises(BadInputError, match="is a folder"):
        check_writable_target(tmp_path / "out", force=False)
    with pytest.raises(BadInputError, match="not a regular file"):
        check_writable_target(Path("/dev/null"), force=False)


def test_a_file_that_appears_during_the_write_is_not_replaced(tmp_path):
    # Two quantizes to one -o both passed the check at the start; the later rename silently
    # replaced the other's finished file.
    target = tmp_path / "out.gguf"
    with pytest.raises(BadInputError, match="already exists; pass --force"), atomic_output(target) as tmp:
        tmp.write_text("mine", encoding="utf-8")
        target.write_text("theirs", encoding="utf-8")
    assert target.read_text(encoding="utf-8") == "theirs" and list(tmp_path.iterdir()) == [target]


def test_a_forced_write_replaces_a_file_that_appeared_meanwhile(tmp_path):
    target = tmp_path / "out.gguf"
    with atomic_output(target, force=True) as tmp:
        tmp.write_text("mine", encoding="utf-8")
        target.write_text("theirs", encoding="utf-8")
    assert target.read_text(encoding="utf-8") == "mine" and list(tmp_path.iterdir()) == [target]


def test_without_hard_links_the_name_is_checked_again_before_the_rename(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "out.gguf"
    write(target, "first")
    assert target.read_text(encoding="utf-8") == "first" and list(tmp_path.iterdir()) == [target]
    second = tmp_path / "second.gguf"
    with pytest.raises(BadInputError, match="already exists"), atomic_output(second) as tmp:
        tmp.write_text("mine", encoding="utf-8")
        second.write_text("theirs", encoding="utf-8")
    assert second.read_text(encoding="utf-8") == "theirs" and sorted(tmp_path.iterdir()) == [target, second]


def _ended_process_id() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("name", ["out.gguf", "a" * 250 + ".gguf"])
def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path, name):
    # A killed quantize left `.out.gguf.<pid>.part` (hundreds of MB) for good.
    target = tmp_path / name
    # Each as that process named it (a long name is shortened to fit its pid's digits).
    dead = tmp_path / hidden_name(target, f".{_ended_process_id()}.part").name
    running = tmp_path / hidden_name(target, f".{os.getppid()}.part").name
    other = tmp_path / f".other.gguf.{_ended_process_id()}.part"  # another output's: not this write's business
    for leftover in (dead, running, other):
        leftover.write_text("half", encoding="utf-8")
    write(target, "done")
    assert sorted(tmp_path.iterdir()) == sorted([target, running, other])


def test_the_edit_lock_never_makes_or_opens_a_file_through_a_link(tmp_path):
    # A dangling link in the lock's place had its target created (anywhere the link pointed).
    library = tmp_path / "library.json"
    target = tmp_path / "elsewhere" / "made.txt"
    target.parent.mkdir()
    hidden_name(library, ".lock").symlink_to(target)
    with locked(library):
        library.write_text("{}")
    assert not target.exists() and library.read_text() == "{}"
    os.mkfifo(tmp_path / "fifo")
    fifo_lock = hidden_name(tmp_path / "fifo", ".lock")
    os.mkfifo(fifo_lock)
    with locked(tmp_path / "fifo"):  # opened at once, never waiting for a writer
        pass
