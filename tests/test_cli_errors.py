"""What the CLI does with an error nobody foresaw: one line and exit 1, the traceback on request."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llamadesk.app.commands import info
from tests.conftest import assert_one_clear_line, run_cli


def test_an_unforeseen_error_is_one_line_and_exit_1(monkeypatch):
    def broken(_args):
        raise KeyError("surprise")

    monkeypatch.setattr(info, "run", broken)
    monkeypatch.delenv("LLAMADESK_DEBUG", raising=False)
    result = run_cli("info", "smollm2")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llamadesk: internal error (KeyError")
    assert "LLAMADESK_DEBUG=1" in lines[0] and "Traceback" not in result.stderr


def test_running_out_of_memory_is_one_line_and_exit_1(monkeypatch):
    def hungry(_args):
        raise MemoryError

    monkeypatch.setattr(info, "run", hungry)
    result = run_cli("info", "smollm2")
    assert result.returncode == 1 and result.stderr.strip() == (
        "llamadesk: ran out of memory; close other programs or use a smaller model"
    )


@pytest.mark.parametrize("command", [("models",), ()], ids=["a command", "the app"])
def test_a_file_in_the_data_folders_place_is_one_line_saying_so(tmp_path, command):
    # Every command and the app ended on "llamadesk: File exists: .../data".
    (tmp_path / "data").write_text("not a folder")
    result = run_cli(*command, env={"LLAMADESK_HOME": str(tmp_path)})
    assert_one_clear_line(
        result,
        1,
        f"{tmp_path / 'data'} is not a folder, and llamadesk keeps its data there; move it away "
        "(or set LLAMADESK_HOME to another folder)",
    )


def test_a_data_folder_that_cannot_be_created_is_one_line_saying_so(tmp_path):
    from tests.permissions import permissions_enforced

    tmp_path.chmod(0o555)
    try:
        with permissions_enforced():
            result = run_cli("models", env={"LLAMADESK_HOME": str(tmp_path)})
    finally:
        tmp_path.chmod(0o755)
    assert_one_clear_line(
        result,
        1,
        f"cannot create llamadesk's data folder {tmp_path / 'data'} (Permission denied); make it writable "
        "(or set LLAMADESK_HOME to another folder)",
    )


def test_a_write_past_the_file_size_limit_is_one_line_saying_so(monkeypatch):
    import errno

    def too_large(_args):
        raise OSError(errno.EFBIG, "File too large")  # what printing to a redirected stdout past `ulimit -f` gets

    monkeypatch.setattr(info, "run", too_large)
    result = run_cli("info", "smollm2")
    assert_one_clear_line(
        result,
        1,
        "a file grew past the largest this process may write (`ulimit -f`) or its file system holds "
        "(while writing); raise the limit or write to another disk",
    )


def test_llamadesk_debug_shows_the_traceback(monkeypatch):
    def broken(_args):
        raise KeyError("surprise")

    monkeypatch.setattr(info, "run", broken)
    monkeypatch.setenv("LLAMADESK_DEBUG", "1")
    with pytest.raises(KeyError):
        run_cli("info", "smollm2")


def test_flags_are_taken_only_as_spelled():
    # argparse's prefixes took llama-cli's `--prompt TEXT` for `--prompt-lookup`.
    result = run_cli("chat", "--prompt", "hi")
    assert_one_clear_line(result, 2, "unrecognized arguments: --prompt", "see `llamadesk chat --help`")


# A command that gets Ctrl-C while numpy is being imported: numpy's compiled part turns the
# KeyboardInterrupt into an ImportError with nothing of the interrupt left in it.
NUMPY_S_CTRL_C = """
import argparse, os, signal, sys
from llamadesk.app import cli

def command(args):
    try:
        if sys.argv[1] == "ctrl-c":
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10**7):
                pass
    except KeyboardInterrupt:
        pass
    raise ImportError("PyCapsule_Import could not import module datetime")

class Parser:
    def parse_args(self, argv):
        return argparse.Namespace(command="x", handler=command)

cli.build_parser = lambda prog: Parser()
sys.exit(cli.main(["x"]))
"""


@pytest.mark.parametrize("case", ["ctrl-c", "no-ctrl-c"])
def test_ctrl_c_that_numpy_turned_into_an_import_error_is_an_interrupt(case):
    done = subprocess.run([sys.executable, "-c", NUMPY_S_CTRL_C, case], capture_output=True, text=True, timeout=60)
    if case == "ctrl-c":  # was: "internal error (ImportError: ...); please report it"
        assert (done.returncode, done.stderr) == (130, "\nllamadesk: interrupted\n")
    else:  # an import that fails of itself is still the internal-error line
        assert done.returncode == 1 and done.stderr.startswith("llamadesk: internal error (ImportError")
