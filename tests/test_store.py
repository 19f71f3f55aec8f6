"""The conversation store on real SQLite files: schema upgrades, messages, search, export."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from llamadesk.app.chat.export import export_conversation
from llamadesk.app.chat.store import ConversationSettings, Store
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
