"""`llamadesk` with no command opens the app; what stops it from opening is one clear line."""

from __future__ import annotations

import sqlite3

from tests.conftest import run_cli, run_cli_process


def test_a_store_from_a_newer_llamadesk_is_one_line_and_exit_1(tmp_path):
    # Damaged or unwritable files no longer stop the app (test_files_at_start.py); a store that a
    # newer llamadesk wrote does, before the app takes the terminal.
    (tmp_path / "data").mkdir()
    raw = sqlite3.connect(tmp_path / "data" / "conversations.sqlite3")
    raw.execute("PRAGMA user_version = 999")
    raw.close()
    result = run_cli_process(env={"LLAMADESK_HOME": str(tmp_path)}, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "newer llamadesk" in lines[0] and "Traceback" not in result.stderr


def test_help_says_no_command_opens_the_app():
    result = run_cli("--help")
    assert result.returncode == 0 and "With no command, opens the app" in result.stdout
