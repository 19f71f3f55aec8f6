"""Text in the conversation store that is not UTF-8: one damaged byte must not close every conversation.

SQLite keeps TEXT as it was given and `PRAGMA quick_check` never looks inside it, so a byte
flipped on disk or an edit by hand (`CAST(x'4142ff43' AS TEXT)`) reaches Python, whose default
decoding raised OperationalError on every read: `chat --list`, `chat --continue` and the app
ended in an internal error.
"""

from __future__ import annotations

import sqlite3

import pytest

from llamadesk.app.chat.store import ConversationSettings, Store
from tests.conftest import run_cli

NOT_UTF8 = "CAST(x'4142ff43' AS TEXT)"  # "AB", a byte no UTF-8 text holds, "C"
READ_BACK = "AB\ufffdC"


def _store_with_one_conversation(path):
    store = Store(path)
    conversation = store.new_conversation("a title", ConversationSettings(system_prompt="Be brief."))
    store.add_message(conversation.id, "user", "hello")
    store.add_translation("en", "fr", "Hello", "Bonjour", "m")
    store.close()
    return conversation.id


def _damage(path, sql):
    raw = sqlite3.connect(path)
    raw.execute(sql)
    raw.commit()
    assert raw.execute("PRAGMA quick_check").fetchone()[0] == "ok"  # SQLite's check does not see it
    raw.close()


@pytest.mark.parametrize("column", ["title", "system_prompt", "model"])
def test_a_conversation_column_that_is_not_utf8_reads_with_replacement_characters(tmp_path, column):
    path = tmp_path / "c.sqlite3"
    conversation_id = _store_with_one_conversation(path)
    _damage(path, f"UPDATE conversations SET {column} = {NOT_UTF8}")
    store = Store(path)
    (listed,) = store.conversations()
    opened = store.conversation(conversation_id)
    assert listed == opened
    read = {"title": opened.title, "system_prompt": opened.settings.system_prompt, "model": opened.settings.model}
    assert read[column] == READ_BACK
    assert [m.content for m in store.messages(conversation_id)] == ["hello"]
    store.close()


def test_a_message_or_translation_that_is_not_utf8_reads_with_replacement_characters(tmp_path):
    path = tmp_path / "c.sqlite3"
    conversation_id = _store_with_one_conversation(path)
    _damage(path, f"UPDATE messages SET content = {NOT_UTF8}")
    _damage(path, f"UPDATE translations SET translation = {NOT_UTF8}")
    store = Store(path)
    assert [m.content for m in store.messages(conversation_id)] == [READ_BACK]
    assert [t.translation for t in store.translations()] == [READ_BACK]
    store.add_message(conversation_id, "assistant", "still here")  # the conversation goes on
    assert [m.content for m in store.messages(conversation_id)] == [READ_BACK, "still here"]
    store.close()


def test_a_read_only_store_copied_into_memory_reads_it_too(tmp_path):
    path = tmp_path / "c.sqlite3"
    conversation_id = _store_with_one_conversation(path)
    _damage(path, f"UPDATE conversations SET title = {NOT_UTF8}")
    store = Store(path)
    store._fall_back(sqlite3.OperationalError("attempt to write a readonly database"))  # as a write failing
    assert store.not_saved is not None
    assert [c.title for c in store.conversations()] == [READ_BACK]
    assert [m.content for m in store.messages(conversation_id)] == ["hello"]
    store.close()


def test_chat_list_shows_a_title_that_is_not_utf8_instead_of_an_internal_error(tmp_path):
    path = tmp_path / "data" / "conversations.sqlite3"
    path.parent.mkdir()
    _store_with_one_conversation(path)
    _damage(path, f"UPDATE conversations SET title = {NOT_UTF8}")
    result = run_cli("chat", "--list", env={"LLAMADESK_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert READ_BACK in result.stdout and result.stderr == ""


@pytest.mark.parametrize(
    ("value", "shown"), [("x'68656c6c6f'", "hello"), ("x'ff00ff'", "\ufffd\x00\ufffd"), ("42", "42")]
)
def test_a_title_stored_as_bytes_or_a_number_is_still_listed_and_found(tmp_path, value, shown):
    # `WHERE title LIKE ?` matched no BLOB: the conversation vanished from --list and --continue.
    path = tmp_path / "c.sqlite3"
    conversation_id = _store_with_one_conversation(path)
    _damage(path, f"UPDATE conversations SET title = {value}")
    store = Store(path)
    assert [(c.id, c.title) for c in store.conversations()] == [(conversation_id, shown)]
    assert [c.id for c in store.conversations(shown[:1])] == [conversation_id]
    store.close()
