"""The conversation store's schema, as named upgrade steps (the store's own SQL, kept apart).

Each step is a function named `mNNN_what_it_adds`, registered in order by `@migration`; step n
takes a database from `PRAGMA user_version` n - 1 to n. Never edit a released step: append one.
grep finds every schema change by name, as in llm's migrations.py.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def _statements(db: sqlite3.Connection, script: str) -> None:
    """Each statement of `script` inside the caller's transaction (executescript would commit it)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def migration(step: Migration) -> Migration:
    """Register `step` as the next migration; its name must carry its number."""
    number = len(MIGRATIONS) + 1
    assert step.__name__.startswith(f"m{number:03d}_"), f"{step.__name__} should be m{number:03d}_..."
    MIGRATIONS.append(step)
    return step


@migration
def m001_conversations_and_messages(db: sqlite3.Connection) -> None:
    _statements(
        db,
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            model TEXT NOT NULL,
            system_prompt TEXT NOT NULL,
            temperature REAL NOT NULL,
            top_p REAL NOT NULL,
            max_tokens INTEGER,
            context_length INTEGER,
            created REAL NOT NULL,
            updated REAL NOT NULL
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('complete', 'interrupted')),
            created REAL NOT NULL
        );
        CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
    """,
    )


@migration
def m002_conversations_by_last_activity(db: sqlite3.Connection) -> None:
    # The conversation list is sorted by last activity and searched by title.
    _statements(db, "CREATE INDEX conversations_by_update ON conversations(updated DESC);")


@migration
def m003_repeat_penalty(db: sqlite3.Connection) -> None:
    # Small models loop without a repetition penalty; each conversation keeps its own.
    _statements(db, "ALTER TABLE conversations ADD COLUMN repeat_penalty REAL NOT NULL DEFAULT 1.1;")


@migration
def m004_translation_history(db: sqlite3.Connection) -> None:
    _statements(
        db,
        """
        CREATE TABLE translations (
            id INTEGER PRIMARY KEY,
            source_language TEXT NOT NULL,
            target_language TEXT NOT NULL,
            source TEXT NOT NULL,
            translation TEXT NOT NULL,
            model TEXT NOT NULL,
            created REAL NOT NULL
        );
        CREATE INDEX translations_by_time ON translations(created DESC);
    """,
    )


@migration
def m005_conversation_adapters(db: sqlite3.Connection) -> None:
    # The LoRA adapters a conversation applies to its model: a JSON list of [path, scale].
    _statements(db, "ALTER TABLE conversations ADD COLUMN adapters TEXT NOT NULL DEFAULT '[]';")


@migration
def m006_memory_start(db: sqlite3.Connection) -> None:
    # The first message the model saw in the latest reply (a message id; NULL: the first). Reopened,
    # a conversation longer than its context starts from there again, so its prompt cache matches:
    # started from the first message, each reopening dropped turns anew and read the whole window.
    _statements(db, "ALTER TABLE conversations ADD COLUMN memory_start_id INTEGER;")


SCHEMA_VERSION = len(MIGRATIONS)


def upgrade(db: sqlite3.Connection, from_version: int) -> None:
    """Run every step after `from_version`, each in its own transaction with its version bump.

    Each step takes the write lock first (BEGIN IMMEDIATE, waiting out the connection's busy
    timeout) and reads the version again inside it: another process opening the same store may
    have run the step meanwhile, and running it twice would fail ("table ... already exists").
    """
    for number in range(from_version + 1, SCHEMA_VERSION + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            if int(db.execute("PRAGMA user_version").fetchone()[0]) < number:
                MIGRATIONS[number - 1](db)
                db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            # A failed ROLLBACK (the disk filled up, say) must not hide why the step failed.
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
