"""Another program's SQLite database in the conversation store's place is not ours.

A browser's history (`moz_places`) at user_version 0 was taken for a store to set up: llamadesk's
tables were created beside its own and it was switched to WAL, exit 0. At user_version 42 it was
"written by a newer llamadesk; upgrade llamadesk", which no upgrade could ever make true. Now a
database holding tables that are not llamadesk's is kept aside untouched, as any store that is not
ours, unless it is a newer llamadesk's store (all our tables, and maybe tables added since).
"""

from __future__ import annotations

import sqlite3

import pytest

from llamadesk.app.chat.store import ConversationSettings, Store
from llamadesk.app.chat.store_migrations import SCHEMA_VERSION, upgrade
from llamadesk.app.core.errors import LlamadeskError
from tests.conftest import run_cli


def _database(path, *statements, version=0):
    raw = sqlite3.connect(path, isolation_level=None)
    for statement in statements:
        raw.execute(statement)
    raw.execute(f"PRAGMA user_version = {version}")
    raw.close()
    return path.read_bytes()


def _kept_aside(path, before):
    """The only notice of the store opened in `path`'s place, after checking the file was set
    aside byte for byte and a fresh store started."""
    lines: list[str] = []
    store = Store(path, on_notice=lines.append)
    (aside,) = path.parent.glob(f"{path.stem}.damaged-*{path.suffix}")
    assert aside.read_bytes() == before  # not switched to WAL, no table of ours added
    assert store.not_saved is None and store.conversations() == [] and store.schema_version == SCHEMA_VERSION
    store.new_conversation("mine", ConversationSettings())
    store.close()
    (line,) = lines
    assert f"it is kept as {aside.name} and a fresh one was started" in line and "\n" not in line
    return line


@pytest.mark.parametrize("version", [0, 3, SCHEMA_VERSION, 42])
def test_another_programs_database_is_kept_aside_untouched_whatever_its_version(tmp_path, version):
    path = tmp_path / "c.sqlite3"
    before = _database(path, "CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)", version=version)
    line = _kept_aside(path, before)
    assert "its tables are not llamadesk's (it holds moz_places)" in line
    assert "newer llamadesk" not in line


def test_our_tables_beside_a_table_of_another_program_are_not_our_store(tmp_path):
    path = tmp_path / "c.sqlite3"
    raw = sqlite3.connect(path, isolation_level=None)
    upgrade(raw, 0)
    raw.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
    raw.close()
    line = _kept_aside(path, path.read_bytes())
    assert "(it holds moz_places)" in line


def test_table_names_are_said_on_one_short_line(tmp_path):
    path = tmp_path / "c.sqlite3"
    names = ['"a\nsecond line"', *(f"t{n:03d}_{'x' * 20}" for n in range(20))]
    before = _database(path, *(f"CREATE TABLE {name} (x)" for name in names))
    line = _kept_aside(path, before)
    assert "(it holds a second line, t000_" in line and len(line) < 400


def test_sqlites_own_tables_do_not_make_a_store_anothers(tmp_path):
    path = tmp_path / "c.sqlite3"
    raw = sqlite3.connect(path, isolation_level=None)
    upgrade(raw, 0)
    raw.execute("ANALYZE")  # sqlite_stat1
    raw.close()
    lines: list[str] = []
    Store(path, on_notice=lines.append).close()
    assert lines == [] and list(tmp_path.glob("*damaged*")) == []


def test_a_newer_llamadesks_store_with_a_table_added_since_is_still_refused_as_newer(tmp_path):
    # Set aside, it would vanish from under the newer llamadesk too: its history is never moved.
    path = tmp_path / "c.sqlite3"
    raw = sqlite3.connect(path, isolation_level=None)
    upgrade(raw, 0)
    raw.execute("CREATE TABLE folders (id INTEGER PRIMARY KEY, name TEXT)")
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    before = path.read_bytes()
    with pytest.raises(LlamadeskError, match="newer llamadesk"):
        Store(path)
    assert path.read_bytes() == before and list(tmp_path.glob("*damaged*")) == []


def test_chat_list_on_another_programs_database_says_so_in_one_line(tmp_path):
    path = tmp_path / "data" / "conversations.sqlite3"
    path.parent.mkdir()
    before = _database(path, "CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)", version=42)
    result = run_cli("chat", "--list", env={"LLAMADESK_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("llamadesk: ") and "its tables are not llamadesk's (it holds moz_places)" in line
    (aside,) = path.parent.glob("conversations.damaged-*.sqlite3")
    assert aside.read_bytes() == before
