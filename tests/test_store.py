"""The conversation store on real SQLite files: schema upgrades, messages, search, export."""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import sqlite3
import threading
import time

import pytest

from llamadesk.app.chat import store as store_module
from llamadesk.app.chat.export import export_conversation
from llamadesk.app.chat.store import NOT_SAVED, ConversationDeleted, ConversationSettings, Store
from llamadesk.app.chat.store_migrations import MIGRATIONS, SCHEMA_VERSION, upgrade
from llamadesk.app.core.errors import BadInputError, LlamadeskError
from tests.permissions import permissions_enforced

SETTINGS = ConversationSettings(model="smollm2", system_prompt="Be brief.", temperature=0.2, top_p=0.9, max_tokens=64)


@pytest.fixture
def store(tmp_path):
    with_store = Store(tmp_path / "c.sqlite3")
    yield with_store
    with_store.close()


def test_new_store_is_wal_at_the_latest_schema(store, tmp_path):
    assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
    raw = sqlite3.connect(tmp_path / "c.sqlite3")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.integrity_check() == "ok"


# Rows a database of each version can hold, added right after that version's step.
ROWS_AT_VERSION = {
    1: "INSERT INTO conversations (title, model, system_prompt, temperature, top_p, created, updated)"
    " VALUES ('from v1', 'smollm2', '', 0.7, 0.95, 1, 1)",
    3: "INSERT INTO conversations (title, model, system_prompt, temperature, top_p, created, updated, repeat_penalty)"
    " VALUES ('from v3', 'smollm2', 'Be brief.', 0.2, 0.9, 2, 2, 1.3)",
    4: "INSERT INTO translations (source_language, target_language, source, translation, model, created)"
    " VALUES ('en', 'fr', 'Hello', 'Bonjour', 'gemma3-270m', 3)",
}


def test_migrations_are_named_in_order():
    assert [m.__name__[:5] for m in MIGRATIONS] == [f"m{n:03d}_" for n in range(1, SCHEMA_VERSION + 1)]


@pytest.mark.parametrize("version", range(SCHEMA_VERSION))
def test_a_store_made_by_every_earlier_version_upgrades_keeping_its_data(tmp_path, version):
    path = tmp_path / f"v{version}.sqlite3"
    raw = sqlite3.connect(path, isolation_level=None)
    titles = []
    for step in range(1, version + 1):
        MIGRATIONS[step - 1](raw)
        raw.execute(f"PRAGMA user_version = {step}")
        if step in ROWS_AT_VERSION:
            raw.execute(ROWS_AT_VERSION[step])
            if "from v" in ROWS_AT_VERSION[step]:
                titles.append(f"from v{step}")
    raw.close()
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION and store.integrity_check() == "ok"
    assert sorted(c.title for c in store.conversations()) == sorted(titles)
    index_names = {row[0] for row in store._db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"messages_by_conversation", "conversations_by_update", "translations_by_time"} <= index_names
    for conversation in store.conversations():  # step 3's column, with its default where it was added
        assert conversation.settings.repeat_penalty == (1.3 if conversation.title == "from v3" else 1.1)
    # The upgraded store works like a new one.
    made = store.new_conversation("after upgrade", SETTINGS)
    store.add_message(made.id, "user", "hi")
    assert [m.content for m in store.messages(made.id)] == ["hi"]
    store.close()


def test_a_failing_step_leaves_the_database_at_the_previous_version(tmp_path):
    raw = sqlite3.connect(tmp_path / "half.sqlite3", isolation_level=None)
    MIGRATIONS[0](raw)
    raw.execute("PRAGMA user_version = 1")
    raw.execute("CREATE INDEX conversations_by_update ON conversations(title)")  # step 2 will collide
    with pytest.raises(sqlite3.OperationalError):
        upgrade(raw, 1)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
    assert "repeat_penalty" not in {row[1] for row in raw.execute("PRAGMA table_info(conversations)")}


def test_an_upgrade_from_a_stale_version_skips_the_steps_another_process_ran(tmp_path):
    raw = sqlite3.connect(tmp_path / "done.sqlite3", isolation_level=None)
    upgrade(raw, 0)
    upgrade(raw, 2)  # read version 2, then another process finished the upgrade: nothing runs twice
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def _open_at_once(path: str, barrier, results) -> None:
    """One of several processes opening the same store together, as two windows on a first run."""
    notices: list[str] = []
    barrier.wait(timeout=30)
    store = Store(path, on_notice=notices.append)
    conversation = store.new_conversation(f"from {os.getpid()}", SETTINGS)
    store.add_message(conversation.id, "user", "hello")
    results.put((notices, store.not_saved))
    store.close()


@pytest.mark.parametrize("version", [0, 4])
def test_processes_opening_a_new_or_old_store_at_once_neither_set_it_aside(tmp_path, version):
    context = multiprocessing.get_context("fork")
    for attempt in range(6):
        path = tmp_path / f"at-once-{attempt}" / "c.sqlite3"
        path.parent.mkdir()
        if version:
            raw = sqlite3.connect(path, isolation_level=None)
            upgrade(raw, 0)
            for added_since in ("adapters", "memory_start_id"):  # by migrations 5 and 6
                raw.execute(f"ALTER TABLE conversations DROP COLUMN {added_since}")
            raw.execute(f"PRAGMA user_version = {version}")
            raw.execute(
                "INSERT INTO conversations (title, model, system_prompt, temperature, top_p, created, updated)"
                " VALUES ('old history', 'smollm2', '', 0.7, 0.95, 1, 1)"
            )
            raw.close()
        barrier, results = context.Barrier(3), context.Queue()
        openers = [context.Process(target=_open_at_once, args=(str(path), barrier, results)) for _ in range(3)]
        for opener in openers:
            opener.start()
        outcomes = [results.get(timeout=60) for _ in openers]
        for opener in openers:
            opener.join(timeout=30)
        assert outcomes == [([], None)] * 3, f"attempt {attempt}"
        assert sorted(p.name for p in path.parent.iterdir() if "damaged" in p.name) == []
        store = Store(path)
        assert len(store.conversations()) == 3 + (1 if version else 0)
        store.close()


def test_a_store_from_a_newer_llamadesk_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "new.sqlite3"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(LlamadeskError, match="newer llamadesk"):
        Store(path)


def test_a_file_that_is_not_a_database_is_kept_aside_and_a_fresh_store_started(tmp_path):
    path = tmp_path / "junk.sqlite3"
    junk = b"this is not sqlite" * 100
    path.write_bytes(junk)
    lines: list[str] = []
    store = Store(path, on_notice=lines.append)
    (aside,) = tmp_path.glob("junk.damaged-*.sqlite3")
    assert aside.read_bytes() == junk  # kept as it was, never deleted
    assert lines == store.notices and len(lines) == 1 and aside.name in lines[0] and "\n" not in lines[0]
    assert store.not_saved is None and store.integrity_check() == "ok"
    conversation = store.new_conversation("fresh", SETTINGS)
    store.close()
    assert Store(path).conversation(conversation.id).title == "fresh"


def test_a_read_only_store_keeps_what_it_had_and_what_is_added_in_memory(tmp_path):
    path = tmp_path / "c.sqlite3"
    store = Store(path)
    old = store.new_conversation("old", SETTINGS)
    store.add_message(old.id, "user", "from before")
    store.close()
    before = path.read_bytes()
    os.chmod(path, 0o444)
    try:
        with permissions_enforced():
            store = Store(path, on_notice=lambda _line: None)
            assert store.not_saved is not None and "readonly" in store.not_saved
            store.add_message(old.id, "assistant", "new")  # the old conversation goes on, in memory
            assert [m.content for m in store.messages(old.id)] == ["from before", "new"]
            store.close()
    finally:
        os.chmod(path, 0o644)
    assert path.read_bytes() == before


def test_conversations_keep_their_settings_and_messages_in_order(store):
    conversation = store.new_conversation("Paris", SETTINGS)
    store.add_message(conversation.id, "user", "What is the capital of France?")
    reply = store.add_message(conversation.id, "assistant", "", "interrupted")
    store.update_message(reply, "Paris.", "complete")
    again = store.conversation(conversation.id)
    assert again.settings == SETTINGS
    assert [(m.role, m.content, m.state) for m in store.messages(conversation.id)] == [
        ("user", "What is the capital of France?", "complete"),
        ("assistant", "Paris.", "complete"),
    ]


def test_rename_update_settings_and_delete_cascades(store):
    conversation = store.new_conversation("old", SETTINGS)
    message = store.add_message(conversation.id, "user", "hi")
    store.rename(conversation.id, "new")
    store.update_settings(conversation.id, ConversationSettings(model="gemma3-270m", context_length=512))
    again = store.conversation(conversation.id)
    assert again.title == "new" and again.settings.model == "gemma3-270m" and again.settings.context_length == 512
    store.delete_message(message.id)
    assert store.messages(conversation.id) == []
    store.add_message(conversation.id, "user", "again")
    store.delete(conversation.id)
    assert store.conversations() == []
    assert store._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0


def test_search_by_title_treats_wildcards_as_text_and_lists_recent_first(store):
    first = store.new_conversation("100% sure", SETTINGS)
    second = store.new_conversation("a_b", SETTINGS)
    store.new_conversation("something else", SETTINGS)
    assert [c.title for c in store.conversations("%")] == ["100% sure"]
    assert [c.title for c in store.conversations("_")] == ["a_b"]
    store.add_message(first.id, "user", "bump")  # activity moves it to the top
    assert [c.id for c in store.conversations()][0] == first.id
    assert second.id in [c.id for c in store.conversations("A_B")]  # case-insensitive


def test_missing_conversation_is_a_clear_error(store):
    with pytest.raises(LlamadeskError, match="does not exist"):
        store.conversation(42)


def test_export_markdown_and_json(store, tmp_path):
    conversation = store.new_conversation("Capitals", SETTINGS)
    store.add_message(conversation.id, "user", "Capital of France?")
    store.add_message(conversation.id, "assistant", "Par", "interrupted")
    messages = store.messages(conversation.id)
    md = export_conversation(conversation, messages, tmp_path / "c.md").read_text()
    assert md.startswith("# Capitals")
    assert "## You\n\nCapital of France?" in md
    assert "## Assistant (interrupted)\n\nPar" in md
    assert "Be brief." in md
    data = json.loads(export_conversation(conversation, messages, tmp_path / "c.json").read_text())
    assert data["title"] == "Capitals" and data["settings"]["temperature"] == 0.2
    assert [m["state"] for m in data["messages"]] == ["complete", "interrupted"]
    with pytest.raises(BadInputError, match="already exists"):
        export_conversation(conversation, messages, tmp_path / "c.md")


# -- what the store reads back, and where it lives --------------------------------------------


@pytest.mark.parametrize(
    "column",
    [
        "not json",
        '{"a.gguf": 1.0}',  # JSON, but not a list
        json.dumps([["a.gguf", 1.0]] * 17),  # more adapters than anyone applies
        '[["a.gguf", "1.0"]]',  # a scale that is text
        '[["a.gguf"]]',
        "[[1, 1.0]]",
    ],
)
def test_an_adapters_column_this_code_did_not_write_reads_as_no_adapters(store, tmp_path, column):
    conversation = store.new_conversation("lora", SETTINGS)
    raw = sqlite3.connect(tmp_path / "c.sqlite3", isolation_level=None)
    raw.execute("UPDATE conversations SET adapters = ? WHERE id = ?", (column, conversation.id))
    raw.close()
    assert store.conversation(conversation.id).settings.adapters == ()


def test_adapters_come_back_as_paths_with_float_scales(store):
    settings = ConversationSettings(adapters=(("style.gguf", 1), ("tone.gguf", 0.25)))
    conversation = store.new_conversation("lora", settings)
    adapters = store.conversation(conversation.id).settings.adapters
    assert adapters == (("style.gguf", 1.0), ("tone.gguf", 0.25))
    assert type(adapters[0][1]) is float


def test_without_a_path_the_store_lives_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMADESK_HOME", str(tmp_path))
    store = Store()
    store.new_conversation("at home", SETTINGS)
    store.close()
    assert store.path == tmp_path / "data" / "conversations.sqlite3"
    assert [c.title for c in Store(tmp_path / "data" / "conversations.sqlite3").conversations()] == ["at home"]


# -- files that are not a sound store ---------------------------------------------------------


def test_a_folder_in_place_of_the_store_is_said_on_stderr_and_the_store_runs_in_memory(tmp_path, capsys):
    path = tmp_path / "c.sqlite3"
    path.mkdir()
    store = Store(path)
    err = capsys.readouterr().err
    assert (
        err == f"llamadesk: the conversation store {path} cannot be written (a folder is in its place); {NOT_SAVED}\n"
    )
    assert store.not_saved == f"the conversation store {path} cannot be written (a folder is in its place)"
    conversation = store.new_conversation("in memory", SETTINGS)
    store.add_message(conversation.id, "user", "hi")
    assert [m.content for m in store.messages(conversation.id)] == ["hi"]
    assert path.is_dir() and list(path.iterdir()) == []


def test_a_fifo_in_place_of_the_store_is_not_opened(tmp_path):
    path = tmp_path / "c.sqlite3"
    os.mkfifo(path)
    lines: list[str] = []
    store = Store(path, on_notice=lines.append)  # SQLite would wait forever for a writer
    assert lines == [f"the conversation store {path} cannot be written (it is not a file); {NOT_SAVED}"]
    assert store.conversations() == [] and store.schema_version == SCHEMA_VERSION


def _damaged_store(path, lines):
    """The only notice of a store opened on a damaged file, after checking it was set aside."""
    before = path.read_bytes()
    store = Store(path, on_notice=lines.append)
    (aside,) = path.parent.glob(f"{path.stem}.damaged-*{path.suffix}")
    assert aside.read_bytes() == before
    assert store.not_saved is None and store.conversations() == [] and store.schema_version == SCHEMA_VERSION
    store.close()
    (line,) = lines
    assert f"it is kept as {aside.name} and a fresh one was started" in line
    return line


def test_pages_that_sqlites_check_finds_damaged_are_named_on_one_line(tmp_path):
    path = tmp_path / "c.sqlite3"
    store = Store(path)
    store.new_conversation("x", SETTINGS)
    store.close()
    data = bytearray(path.read_bytes())
    data[36:40] = (999).to_bytes(4, "big")  # the header's count of free pages
    path.write_bytes(bytes(data))
    line = _damaged_store(path, [])
    assert "was damaged (SQLite's check found: Main freelist: size is 0 but should be 999)" in line
    assert "***" not in line and "\n" not in line


def test_a_database_at_our_version_with_other_tables_is_not_taken_for_ours(tmp_path):
    path = tmp_path / "c.sqlite3"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE conversations (id INTEGER PRIMARY KEY, name TEXT)")
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    raw.commit()
    raw.close()
    line = _damaged_store(path, [])
    assert "was damaged (its tables are not llamadesk's (no such column: title))" in line


def test_an_old_database_whose_upgrade_fails_is_kept_aside(tmp_path):
    path = tmp_path / "c.sqlite3"
    raw = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](raw)
    raw.execute("PRAGMA user_version = 1")
    raw.execute("CREATE INDEX conversations_by_update ON conversations(title)")  # step 2 will collide
    raw.execute(ROWS_AT_VERSION[1])
    raw.execute("PRAGMA journal_mode=WAL")  # as every store is: setting it up again changes nothing
    raw.close()
    line = _damaged_store(path, [])
    assert "(its tables are not llamadesk's (index conversations_by_update already exists))" in line


def test_a_damaged_file_that_cannot_be_moved_aside_leaves_an_empty_store_in_memory(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    path = folder / "c.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    lines: list[str] = []
    os.chmod(folder, 0o555)
    try:
        with permissions_enforced():
            store = Store(path, on_notice=lines.append)
    finally:
        os.chmod(folder, 0o755)
    assert sorted(p.name for p in folder.iterdir()) == ["c.sqlite3"]
    assert store.not_saved.startswith(
        f"the conversation store {path} is damaged (file is not a database) and cannot be replaced ("
    )
    assert "Permission denied" in store.not_saved and lines == [f"{store.not_saved}; {NOT_SAVED}"]
    # The screen may still show conversations from the file: their messages are accepted.
    store.add_message(7, "user", "still here")
    assert [m.content for m in store.messages(7)] == ["still here"]


def test_every_name_already_taken_is_skipped_when_setting_a_file_aside(tmp_path, monkeypatch):
    path = tmp_path / "c.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    taken = [tmp_path / "c.damaged-20250101-120000.sqlite3", tmp_path / "c.damaged-20250101-120000-2.sqlite3-wal"]
    for other in taken:
        other.write_bytes(b"earlier")
    monkeypatch.setattr(time, "strftime", lambda _format: "20250101-120000")
    lines: list[str] = []
    Store(path, on_notice=lines.append).close()
    assert "it is kept as c.damaged-20250101-120000-3.sqlite3" in lines[0]
    assert (tmp_path / "c.damaged-20250101-120000-3.sqlite3").read_bytes() == b"this is not sqlite" * 100
    assert [other.read_bytes() for other in taken] == [b"earlier", b"earlier"]


def _read_only_v1_store(path, extra_sql=""):
    raw = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0](raw)
    raw.execute("PRAGMA user_version = 1")
    if extra_sql:
        raw.execute(extra_sql)
    raw.execute(ROWS_AT_VERSION[1])
    raw.execute("PRAGMA journal_mode=WAL")
    raw.close()
    os.chmod(path, 0o444)


def test_a_read_only_store_from_an_old_version_is_upgraded_in_memory(tmp_path):
    path = tmp_path / "c.sqlite3"
    _read_only_v1_store(path)
    before = path.read_bytes()
    with permissions_enforced():
        store = Store(path, on_notice=lambda _line: None)
    assert store.not_saved == f"the conversation store {path} cannot be written (attempt to write a readonly database)"
    (old,) = store.conversations()
    assert old.title == "from v1" and old.settings.repeat_penalty == 1.1 and old.settings.adapters == ()
    store.add_message(old.id, "user", "in memory")
    assert [m.content for m in store.messages(old.id)] == ["in memory"]
    with pytest.raises(ConversationDeleted):
        store.add_message(old.id + 1, "user", "to nowhere")  # the copy keeps its foreign keys
    assert path.read_bytes() == before


def test_a_store_in_a_read_only_folder_is_read_into_memory_not_started_empty(tmp_path):
    # SQLite cannot make the WAL index there: the copy through the read-write connection fails.
    path = tmp_path / "data" / "c.sqlite3"
    path.parent.mkdir()
    store = Store(path)
    kept = store.new_conversation("kept", SETTINGS)
    store.add_message(kept.id, "user", "from before")
    store.close()
    os.chmod(path.parent, 0o555)
    try:
        with permissions_enforced():
            store = Store(path, on_notice=lambda _line: None)
            assert store.not_saved is not None and not store.file_unread and not store.locked_out
            assert [m.content for m in store.messages(kept.id)] == ["from before"]
            store.add_message(kept.id, "assistant", "in memory")
            store.close()
    finally:
        os.chmod(path.parent, 0o755)


def test_a_read_only_folder_still_shows_what_a_killed_writer_left_in_the_wal(tmp_path):
    # The `immutable` read of the file alone missed every message still in the WAL.
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "data" / "c.sqlite3"
    path.parent.mkdir()
    store = Store(path)
    kept = store.new_conversation("kept", SETTINGS)
    store.close()
    writer = (
        "import os, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        'db.execute("INSERT INTO messages (conversation_id, role, content, state, created)'
        " VALUES (?, 'user', 'in the WAL', 'complete', 0)\", (int(sys.argv[2]),))\n"
        "os._exit(0)  # killed: no checkpoint, the WAL stays\n"
    )
    subprocess.run([sys.executable, "-c", writer, str(path), str(kept.id)], check=True)
    assert Path(f"{path}-wal").stat().st_size > 0
    Path(f"{path}-shm").unlink()  # the index is SQLite's to rebuild (a copied or restored folder lacks it)
    files = [path, Path(f"{path}-wal")]
    for file in [*files, path.parent]:  # read-only throughout, as on a read-only disk or backup
        os.chmod(file, 0o555 if file.is_dir() else 0o444)
    try:
        with permissions_enforced():
            store = Store(path, on_notice=lambda _line: None)
            assert store.not_saved is not None
            assert [m.content for m in store.messages(kept.id)] == ["in the WAL"]
            store.close()
    finally:
        for file in [path.parent, *files]:
            os.chmod(file, 0o755 if file.is_dir() else 0o644)


def test_a_read_only_store_whose_copy_cannot_be_upgraded_starts_empty(tmp_path):
    path = tmp_path / "c.sqlite3"
    # Step 3 adds this column again: the upgrade of the copy in memory fails.
    _read_only_v1_store(path, "ALTER TABLE conversations ADD COLUMN repeat_penalty REAL NOT NULL DEFAULT 1.1")
    with permissions_enforced():
        store = Store(path, on_notice=lambda _line: None)
    assert store.not_saved is not None and "readonly" in store.not_saved
    assert store.conversations() == [] and store.schema_version == SCHEMA_VERSION
    store.add_message(1, "user", "kept")
    assert [m.content for m in store.messages(1)] == ["kept"]


# -- writes that fail -------------------------------------------------------------------------


def test_a_message_for_a_missing_conversation_is_refused_and_leaves_no_transaction(store):
    conversation = store.new_conversation("here", SETTINGS)
    updated = store.conversation(conversation.id).updated
    with pytest.raises(ConversationDeleted, match=f"conversation {conversation.id + 1} was deleted elsewhere"):
        store.add_message(conversation.id + 1, "user", "to nowhere")
    assert not store._db.in_transaction and store.not_saved is None
    assert store._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    assert store.conversation(conversation.id).updated == updated
    store.add_message(conversation.id, "user", "here")  # the store goes on
    assert [m.content for m in store.messages(conversation.id)] == ["here"]


def test_a_conversation_deleted_by_another_process_refuses_its_next_message_with_a_clear_error(tmp_path):
    path = tmp_path / "c.sqlite3"
    store = Store(path)
    conversation = store.new_conversation("open here", SETTINGS)
    store.add_message(conversation.id, "user", "first")
    other = Store(path)  # another window
    other.delete(conversation.id)
    other.close()
    with pytest.raises(ConversationDeleted, match="deleted elsewhere"):
        store.add_message(conversation.id, "assistant", "reply")
    assert store.not_saved is None and store.conversations() == []
    store.close()


@pytest.fixture
def short_lock_wait(monkeypatch):
    """Stores opened in the test wait 50 ms for a lock instead of SQLite's 5 s."""
    monkeypatch.setattr(sqlite3, "connect", functools.partial(sqlite3.connect, timeout=0.05))
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.05)


def test_a_store_locked_by_another_writer_goes_on_in_memory_with_what_it_had(tmp_path, short_lock_wait):
    path = tmp_path / "c.sqlite3"
    lines: list[str] = []
    store = Store(path, on_notice=lines.append)
    conversation = store.new_conversation("before", SETTINGS)
    store.add_message(conversation.id, "user", "saved")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    try:
        store.add_message(conversation.id, "assistant", "kept in memory")
        store.add_message(conversation.id, "user", "and this")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert lines == [f"the conversation store {path} cannot be written any more (database is locked); {NOT_SAVED}"]
    assert [m.content for m in store.messages(conversation.id)] == ["saved", "kept in memory", "and this"]
    store.close()
    assert [m.content for m in Store(path).messages(conversation.id)] == ["saved"]


def test_a_store_another_program_holds_exclusively_starts_empty_instead_of_waiting(tmp_path, short_lock_wait):
    path = tmp_path / "c.sqlite3"
    store = Store(path)
    store.new_conversation("unreachable", SETTINGS)
    store.close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA locking_mode=EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    seen: list[object] = []
    lines: list[str] = []

    def open_and_use() -> None:
        store = Store(path, on_notice=lines.append)
        seen.append(store.conversations())
        store.add_message(1, "user", "in memory")
        seen.append([m.content for m in store.messages(1)])

    # Python's backup retries a locked source forever: open it where a hang cannot stop the suite.
    opening = threading.Thread(target=open_and_use, daemon=True)
    opening.start()
    opening.join(timeout=30)
    other.execute("ROLLBACK")
    other.close()
    assert not opening.is_alive(), "opening a store another program holds locked did not return"
    assert lines == [f"the conversation store {path} cannot be written (database is locked); {NOT_SAVED}"]
    assert seen == [[], ["in memory"]]


# -- translation history ----------------------------------------------------------------------


def test_translations_come_back_newest_first_up_to_the_limit(store):
    first = store.add_translation("en", "fr", "Hello", "Bonjour", "gemma3-270m")
    second = store.add_translation("en", "de", "Hello", "Hallo", "gemma3-270m")
    third = store.add_translation("fr", "en", "Merci", "Thank you", "smollm2")
    assert first.id < second.id < third.id and first.created <= third.created
    assert store.translations(limit=2) == [third, second]
    assert [t.translation for t in store.translations()] == ["Thank you", "Hallo", "Bonjour"]


def test_rows_edited_by_hand_read_as_usable_values(store):
    # `chat --list` crashed on a text `updated` (TypeError) and on 1e300 (OverflowError); a BLOB
    # message reached the chat template, which was then blamed for it.
    kept = store.new_conversation("kept", SETTINGS)
    message = store.add_message(kept.id, "user", "hello")
    store._execute("UPDATE conversations SET updated = 'abc', created = 1e300, title = 42 WHERE id = ?", (kept.id,))
    store._execute("UPDATE messages SET content = X'68c3a9ff' WHERE id = ?", (message.id,))
    [conversation] = store.conversations()
    assert (conversation.title, conversation.created, conversation.updated) == ("42", 0.0, 0.0)
    [read] = store.messages(kept.id)
    assert read.content == "hé\ufffd"


# In a child: the file-size limit is per process. It stands for the disk filling up under the store
# (SQLite then fails as it does on a full disk); disk_usage is told the disk is full too, or not.
STORE_FILLING_UP = """
import json, resource, shutil, sys
from collections import namedtuple
from pathlib import Path
from llamadesk.app.chat import store as store_module
from llamadesk.app.chat.store import ConversationSettings, Store
path, free = Path(sys.argv[1]), int(sys.argv[2])
usage = namedtuple("usage", "total used free")
store_module.shutil.disk_usage = lambda _folder: usage(10**9, 10**9 - free, free)
store = Store(path, on_notice=lambda _line: None)
conversation = store.new_conversation("filling", ConversationSettings())
size = sum(p.stat().st_size for p in path.parent.iterdir())
resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))
for n in range(100):
    store.add_message(conversation.id, "assistant", f"reply {n} " * 2000)
print(json.dumps([store.not_saved, len(store.messages(conversation.id))]))
"""


@pytest.mark.parametrize("free, reason", [(0, "the disk is full"), (10**9, "disk I/O error")])
def test_a_store_on_a_full_disk_says_the_disk_is_full(tmp_path, free, reason):
    # On a full disk SQLite may say "disk I/O error" (the WAL index cannot grow), which reads as
    # failing hardware; the line says what the user can do something about.
    import subprocess
    import sys

    path = tmp_path / "conversations.sqlite3"
    done = subprocess.run(
        [sys.executable, "-c", STORE_FILLING_UP, str(path), str(free)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert json.loads(done.stdout) == [f"the conversation store {path} cannot be written any more ({reason})", 100]
