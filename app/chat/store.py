"""The conversation store: the only code in llamadesk that speaks SQL.

One SQLite file (stdlib sqlite3) under the data folder, in WAL mode so a reader never waits for
the writer and a killed app leaves a consistent file. The schema carries a version
(`PRAGMA user_version`) and upgrades itself by the named steps in store_migrations.py.

A message is committed as soon as it is complete. A reply that is still streaming is stored with
state "interrupted" and its text is rewritten as it grows; only when it ends normally does it
become "complete". So if the app dies mid-reply, what was saved is already marked interrupted.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.chat.store_migrations import SCHEMA_VERSION, upgrade
from llamadesk.app.core.paths import data_dir
from llamadesk.app.settings.chat_defaults import DEFAULT_REPEAT_PENALTY

STORE_FILE = "conversations.sqlite3"

Role = Literal["system", "user", "assistant"]
MessageState = Literal["complete", "interrupted"]



@dataclass(frozen=True)
class ConversationSettings:
    """How one conversation talks to its model. None means: let llamadesk choose."""

    model: str = "smollm2"
    system_prompt: str = ""
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int | None = None
    context_length: int | None = None
    repeat_penalty: float = DEFAULT_REPEAT_PENALTY


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    settings: ConversationSettings
    created: float
    updated: float


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: int
    role: Role
    content: str
    state: MessageState
    created: float = field(default=0.0)


@dataclass(frozen=True)
class StoredTranslation:
    id: int
    source_language: str
    target_language: str
    source: str
    translation: str
    model: str
    created: float


def default_store_path() -> Path:
    return data_dir() / STORE_FILE


class Store:
    """Conversations and their messages in one SQLite file."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path is not None else default_store_path()
        try:
            # isolation_level=None: we commit explicitly, one statement or one `with` block each.
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL never corrupts the file; a commit survives the app being killed
            # (only an OS crash can lose the last one), and commits stay sub-millisecond.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._upgrade()
        except sqlite3.DatabaseError as err:
            raise LlamadeskError(
                f"the conversation store {self.path} cannot be opened ({err}); move it aside to start a fresh one"
            ) from err

    # -- schema -----------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _upgrade(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise LlamadeskError(
                f"the conversation store {self.path} was written by a newer llamadesk "
                f"(schema {version}, this one knows {SCHEMA_VERSION}); upgrade llamadesk"
            )
        upgrade(self._db, version)

    def integrity_check(self) -> str:
        """SQLite's own check of the file: 'ok' when it is sound."""
        return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    # -- conversations ----------------------------------------------------------------------

    def new_conversation(self, title: str, settings: ConversationSettings) -> Conversation:
        now = time.time()
        cur = self._db.execute(
            "INSERT INTO conversations (title, model, system_prompt, temperature, top_p, max_tokens,"
            " context_length, repeat_penalty, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                title,
                settings.model,
                settings.system_prompt,
                settings.temperature,
                settings.top_p,
                settings.max_tokens,
                settings.context_length,
                settings.repeat_penalty,
                now,
                now,
            ),
        )
        return Conversation(int(cur.lastrowid), title, settings, now, now)

    def conversations(self, title_contains: str = "") -> list[Conversation]:
        """Conversations, most recently active first; only those whose title contains the text."""
        pattern = "%" + title_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._rows(
            "SELECT * FROM conversations WHERE title LIKE ? ESCAPE '\\' ORDER BY updated DESC, id DESC", (pattern,)
        )
        return [_conversation(row) for row in rows]

    def conversation(self, conversation_id: int) -> Conversation:
        rows = self._rows("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        row = rows[0] if rows else None
        if row is None:
            raise LlamadeskError(f"conversation {conversation_id} does not exist")
        return _conversation(row)

    def _rows(self, sql: str, parameters: tuple) -> list[sqlite3.Row]:
        """Rows addressable by column name, so added columns never shift positions."""
        cursor = self._db.cursor()
        cursor.row_factory = sqlite3.Row
        return cursor.execute(sql, parameters).fetchall()

    def rename(self, conversation_id: int, title: str) -> None:
        self._db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id))

    def update_settings(self, conversation_id: int, settings: ConversationSettings) -> None:
        self._db.execute(
            "UPDATE conversations SET model = ?, system_prompt = ?, temperature = ?, top_p = ?,"
            " max_tokens = ?, context_length = ?, repeat_penalty = ? WHERE id = ?",
            (
                settings.model,
                settings.system_prompt,
                settings.temperature,
                settings.top_p,
                settings.max_tokens,
                settings.context_length,
                settings.repeat_penalty,
                conversation_id,
            ),
        )

    def delete(self, conversation_id: int) -> None:
        self._db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # -- messages ---------------------------------------------------------------------------

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        rows = self._db.execute(
            "SELECT id, conversation_id, role, content, state, created FROM messages"
            " WHERE conversation_id = ? ORDER BY id",
            (conversation_id,),
        ).fetchall()
        return [StoredMessage(*row) for row in rows]

    def add_message(
        self, conversation_id: int, role: Role, content: str, state: MessageState = "complete"
    ) -> StoredMessage:
        """Append a message and commit it (a reply that starts streaming is added 'interrupted')."""
        now = time.time()
        with self._transaction():
            cur = self._db.execute(
                "INSERT INTO messages (conversation_id, role, content, state, created) VALUES (?, ?, ?, ?, ?)",
                (conversation_id, role, content, state, now),
            )
            self._db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation_id))
        return StoredMessage(int(cur.lastrowid), conversation_id, role, content, state, now)

    def update_message(self, message: StoredMessage, content: str, state: MessageState) -> StoredMessage:
        self._db.execute("UPDATE messages SET content = ?, state = ? WHERE id = ?", (content, state, message.id))
        return replace(message, content=content, state=state)

    def delete_message(self, message_id: int) -> None:
        self._db.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    # -- translation history ----------------------------------------------------------------

    def add_translation(
        self, source_language: str, target_language: str, source: str, translation: str, model: str
    ) -> StoredTranslation:
        """Remember one finished translation (language codes, both texts, the model's name)."""
        now = time.time()
        cursor = self._db.execute(
            "INSERT INTO translations (source_language, target_language, source, translation, model, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (source_language, target_language, source, translation, model, now),
        )
        return StoredTranslation(
            int(cursor.lastrowid or 0), source_language, target_language, source, translation, model, now
        )

    def translations(self, limit: int = 50) -> list[StoredTranslation]:
        """The most recent translations, newest first."""
        rows = self._db.execute(
            "SELECT id, source_language, target_language, source, translation, model, created"
            " FROM translations ORDER BY created DESC, id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [StoredTranslation(*row) for row in rows]

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Commit on success, roll back on error (sqlite3's own `with` needs legacy isolation)."""
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def _conversation(row: sqlite3.Row) -> Conversation:
    settings = ConversationSettings(**{f.name: row[f.name] for f in fields(ConversationSettings)})
    return Conversation(row["id"], row["title"], settings, row["created"], row["updated"])
