"""`llamadesk` with no command opens the app; what stops it from opening is one clear line."""

from __future__ import annotations

from tests.conftest import run_cli


def test_a_broken_config_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.json").write_text("{broken")
    result = run_cli(env={"LLAMADESK_HOME": str(tmp_path)}, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "config.json is not valid JSON" in lines[0] and "Traceback" not in result.stderr


def test_a_store_that_is_not_sqlite_is_one_line_and_exit_1(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "conversations.sqlite3").write_bytes(b"not a database" * 100)
    result = run_cli(env={"LLAMADESK_HOME": str(tmp_path)}, timeout=60)
    assert result.returncode == 1
    assert "move it aside" in result.stderr and "Traceback" not in result.stderr


def test_help_says_no_command_opens_the_app():
    result = run_cli("--help")
    assert result.returncode == 0 and "With no command, opens the app" in result.stdout
