"""What the CLI does with an error nobody foresaw: one line and exit 1, the traceback on request."""

from __future__ import annotations

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
