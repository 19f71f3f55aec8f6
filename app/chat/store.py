"""The conversation store: the only code in llamadesk that speaks SQL.

One SQLite file (stdlib sqlite3) under the data folder, in WAL mode so a reader never waits for
the writer and a killed app leaves a consistent file. The schema carries a version
(`PRAGMA user_version`) and upgrades itself by the named steps in store_migrations.py.

A message is committed as soon as it is complete. A reply that is still streaming is stored with
state "interrupted" and its text is rewritten as it grows; only when it ends normally does it
become "complete". So if the app dies mid-reply, what was saved is already marked interrupted.

The store never takes the app down with it. A damaged file (not a database, corrupt pages, a
schema or tables that are not ours) is kept aside under a dated name, never deleted, and a fresh
store is started. A store that cannot be written (a read-only file or folder, a full disk, a folder in its
place) is copied into memory: the conversation goes on and is kept until the app quits. Either
way one line says so, through `on_notice` (the app shows it; by default it goes to stderr).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from llamadesk.app.chat.store_migrations import SCHEMA_VERSION, upgrade
from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.core.paths import data_dir
from llamadesk.app.core.value_ranges import CONTEXT, MAX_TOKENS, REPEAT_PENALTY, TEMPERATURE, TOP_P, shown
from llamadesk.app.settings.chat_defaults import (
    DEFAULT_REPEAT_PENALTY,
    DEFAULT_SYSTEM_PROMPT,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
)

STORE_FILE = "conversations.sqlite3"

Role = Literal["system", "user", "assistant"]
MessageState = Literal["complete", "interrupted"]

# SQLite's primary result codes (an extended code keeps its primary one in the low byte).
DAMAGED_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
UNWRITABLE_CODES = {
    sqlite3.SQLITE_PERM,
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_CANTOPEN,
}
# Below this much free space a write error is the disk being full (SQLite's WAL index grows by 32 KiB).
NEARLY_FULL_BYTES = 1024**2
DISK_FULL = "the disk is full"
# Another program holds the file: waiting may help, and reading around its lock must not be tried.
LOCK_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
# The columns this code reads and writes, per table: a file that lacks one is not our store.
SCHEMA_COLUMNS = {
    "conversations": "id, title, model, system_prompt, temperature, top_p, max_tokens, context_length,"
    " repeat_penalty, adapters, created, updated, memory_start_id",
    "messages": "id, conversation_id, role, content, state, created",
    "translations": "id, source_language, target_language, source, translation, model, created",
}
# How long opening or writing waits for another process (another window, `chat --save`) to finish
# writing: SQLite's busy timeout.
BUSY_TIMEOUT_S = 5.0
# Opening a damaged store that other llamadesks replace meanwhile: how many files to look at.
OPEN_TRIES = 5
# The identity (st_dev, st_ino) of a file that is no longer at the store's path, whichever it was.
MOVED = (-1, -1)
NOT_SAVED = "conversations are not being saved; what you write now is kept until you quit"


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
    # LoRA adapters (GGUF paths) applied to the model, each with its scale, as LoadSettings.lora.
    adapters: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    settings: ConversationSettings
    created: float
    updated: float
    # Stored settings that could not be used (a row damaged or edited by hand), as (setting, what is
    # wrong with it); `settings` holds the default in each one's place. The CLI refuses them, as it
    # refuses a bad config.json value; the app can go on with the defaults.
    setting_problems: tuple[tuple[str, str], ...] = ()
    # The id of the first message the model saw in the latest reply (None: from the first message).
    memory_start_id: int | None = None


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


def _settings_columns(settings: ConversationSettings) -> tuple:
    """A conversation's settings in the column order INSERT and UPDATE name them."""
    return (
        settings.model,
        settings.system_prompt,
        settings.temperature,
        settings.top_p,
        settings.max_tokens,
        settings.context_length,
        settings.repeat_penalty,
        json.dumps([[path, scale] for path, scale in settings.adapters]),
    )


MAX_ADAPTERS = 16


def _adapters(text: object) -> tuple[tuple[str, float], ...]:
    """The adapters column back as pairs; a value this code did not write reads as none."""
    try:
        pairs = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return ()
    if not isinstance(pairs, list) or len(pairs) > MAX_ADAPTERS:
        return ()
    valid = all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and type(p[1]) in (int, float) for p in pairs
    )
    return tuple((p[0], float(p[1])) for p in pairs) if valid else ()


def _stored_text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise BadInputError(f"{name} must be text, not {shown(value)}")
    return value


def _stored_model(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInputError(f"{name} must be a model name or a path, not {shown(value)}")
    return value


def _optional(check: Callable[[object, str], object]) -> Callable[[object, str], object]:
    return lambda value, name: None if value is None else check(value, name)


def _stored_adapters(value: object, name: str) -> tuple[tuple[str, float], ...]:
    adapters = _adapters(value)
    if not adapters and value not in ("[]", None):  # a LoRA silently dropped would answer as another model
        raise BadInputError(f"{name} must be a list of [path, scale] pairs, not {shown(value)}")
    return adapters


# Each stored setting's check and the value that stands in for it when the check fails. The ranges
# are core/value_ranges', as for the flags and config.json: a row edited by hand or damaged must not
# reach the sampler ("hot" as a temperature was an internal error) or run oddly (top_p 5).
# context_length takes any context --ctx accepts: `chat --save --ctx 128` stores 128.
STORED_SETTINGS: dict[str, tuple[Callable[[object, str], object], object]] = {
    "model": (_stored_model, "smollm2"),
    "system_prompt": (_stored_text, DEFAULT_SYSTEM_PROMPT),
    "temperature": (TEMPERATURE.check, DEFAULT_TEMPERATURE),
    "top_p": (TOP_P.check, DEFAULT_TOP_P),
    "max_tokens": (_optional(MAX_TOKENS.check), None),
    "context_length": (_optional(CONTEXT.check), None),
    "repeat_penalty": (REPEAT_PENALTY.check, DEFAULT_REPEAT_PENALTY),
    "adapters": (_stored_adapters, ()),
}
assert set(STORED_SETTINGS) == {f.name for f in fields(ConversationSettings)}, "every setting needs a check"


def default_store_path() -> Path:
    return data_dir() / STORE_FILE


class ConversationDeleted(LlamadeskError):
    """A message for a conversation that is no longer stored: deleted in another window or program
    while this one had it open."""


class _Damaged(Exception):
    """The file opened, but it is not a sound store of ours."""


def _primary_code(err: sqlite3.Error) -> int | None:
    code = getattr(err, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def print_notice(line: str) -> None:
    print(f"llamadesk: {line}", file=sys.stderr, flush=True)


def _give_up_when_locked(status: int, _remaining: int, _total: int) -> None:
    """Stop a copy whose source another program holds locked: Python's backup would retry forever."""
    if status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        raise sqlite3.OperationalError("the conversation store is locked by another program")


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file is at `path` now, as (st_dev, st_ino); None when there is none to look at."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


@contextlib.contextmanager
def _folder_locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive OS lock (flock) on `folder` itself, released when the process dies.

    The folder, not a lock file beside the store: nothing is left behind, and there is no name in
    which a link to a file elsewhere could be put. Where it cannot be locked (no fcntl, a file
    system without locks) the step goes ahead unlocked, as core/atomic_file.locked does.
    """
    fd = None
    with contextlib.suppress(ImportError, OSError):
        import fcntl

        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _decode_text(value: bytes) -> str:
    """A TEXT value as text, with a byte that is not UTF-8 read as U+FFFD. SQLite stores TEXT as
    given and its checks never look inside: one such byte in a title (an edit by hand, a flipped bit)
    made every read of the list fail, so no conversation could be opened. Shown, it can be fixed."""
    return value.decode("utf-8", errors="replace")


def _connect(target: Path | str, **options: Any) -> sqlite3.Connection:
    """A connection as the store reads through it (every one, the in-memory copies included)."""
    db = sqlite3.connect(target, **options)
    db.text_factory = _decode_text
    return db


def _switch_to_wal(db: sqlite3.Connection) -> None:
    """WAL mode, waiting while another process holds the file: SQLite answers a busy lock here at
    once, without its busy timeout, and two apps opening a new store at once would otherwise give up."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if _primary_code(err) not in LOCK_CODES or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _upgrade_checked(db: sqlite3.Connection, version: int) -> None:
    """The schema upgrade from `version`; a step that fails is damage only if the version it
    started from still stands (another process may have upgraded the store under us)."""
    while True:
        try:
            upgrade(db, version)
            return
        except sqlite3.Error as err:
            if _primary_code(err) in UNWRITABLE_CODES | DAMAGED_CODES:
                raise
            now = int(db.execute("PRAGMA user_version").fetchone()[0])
            if now <= version or now > SCHEMA_VERSION:
                raise _Damaged(f"its tables are not llamadesk's ({err})") from err
            version = now


class Store:
    """Conversations and their messages in one SQLite file (or in memory when it cannot be used).

    `on_notice` receives each line that says the store is not what it was (damaged and replaced,
    or not saving); every such line is also kept in `notices`. `not_saved` says why nothing is
    being saved, or is None while everything is.
    """

    def __init__(self, path: Path | str | None = None, on_notice: Callable[[str], None] | None = None):
        self.path = Path(path) if path is not None else default_store_path()
        self.on_notice = on_notice or print_notice
        self.notices: list[str] = []
        self.not_saved: str | None = None
        self.locked_out = False  # not saving because another program holds the file locked
        self.disk_full = False  # not saving because the disk is full
        self._in_memory = False
        self._fresh_memory = False  # in memory and started empty: nothing further to fall back to
        self._db = self._open()

    @property
    def file_unread(self) -> bool:
        """Whether the store runs in memory, empty, although its file exists: the file's
        conversations (locked by another program, unreadable) are not here to be read."""
        return self._fresh_memory and self.path.exists()

    # -- opening and falling back -----------------------------------------------------------

    def _notice(self, line: str) -> None:
        self.notices.append(line)
        self.on_notice(line)

    def _open(self) -> sqlite3.Connection:
        for _ in range(OPEN_TRIES):
            if self.path.exists() and not self.path.is_file():
                # SQLite would take a folder for an unopenable file, and wait forever on a FIFO.
                return self._unwritable_at_start(
                    None, "a folder is in its place" if self.path.is_dir() else "it is not a file"
                )
            db, checked = None, None
            try:
                db, checked = self._connect_identified()
                self._prepare(db)
                return db
            except sqlite3.Error as err:
                if _primary_code(err) in UNWRITABLE_CODES and not self._moved(checked):
                    return self._unwritable_at_start(db, self._reason(err), _primary_code(err))
                damage = str(err)
            except _Damaged as err:
                damage = str(err)
            except BaseException:
                if db is not None:
                    db.close()
                raise
            # Damaged: keep it aside (the user may want to recover it) and start afresh. Or set
            # aside by another llamadesk as it was checked here (SQLite reads "disk I/O error" when
            # the WAL files go): then _set_aside finds another file there and renames nothing.
            if db is not None:
                db.close()
            try:
                aside = self._set_aside(checked)
                if aside is None:
                    # Not the file found damaged any more: another llamadesk that found it so too
                    # has set it aside (and says so). The one there now is opened as any other.
                    continue
                db = _connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
                self._prepare(db)
            except (OSError, sqlite3.Error, _Damaged) as err:
                return self._unreplaceable(damage, str(err))
            self._notice(
                f"the conversation store {self.path} was damaged ({damage}); it is kept as {aside.name} "
                "and a fresh one was started"
            )
            return db
        return self._unreplaceable(damage, "it was replaced each time it was checked")

    def _connect_identified(self) -> tuple[sqlite3.Connection, tuple[int, int] | None]:
        """A connection to the file at the store's path, and which file that is: MOVED when the
        path changed as SQLite opened it, so which one it has is not known."""
        before = _identity(self.path)
        db = _connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        opened = _identity(self.path)
        return db, opened if before in (None, opened) else MOVED

    def _moved(self, opened: tuple[int, int] | None) -> bool:
        """Whether the file opened (as _connect_identified says) is no longer at the store's path."""
        return opened is not None and _identity(self.path) != opened

    def _unreplaceable(self, damage: str, why: str) -> sqlite3.Connection:
        self.not_saved = f"the conversation store {self.path} is damaged ({damage}) and cannot be replaced ({why})"
        self._notice(f"{self.not_saved}; {NOT_SAVED}")
        return self._memory(None)

    def _prepare(self, db: sqlite3.Connection) -> None:
        """Check the file, then set it up: WAL, the schema upgrade, and a write probe.

        The checks only read, so a file found damaged is kept aside exactly as it was.
        """
        # Pages damaged on disk would otherwise surface later, in the middle of a conversation.
        check = db.execute("PRAGMA quick_check(1)").fetchone()[0]
        if check != "ok":
            # One line: SQLite's report starts with a header line and may run over several.
            found = " ".join(line for line in check.splitlines() if not line.startswith("***"))
            raise _Damaged(f"SQLite's check found: {' '.join(found.split())[:200]}")
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        self._check_tables(db, version)
        if version > SCHEMA_VERSION:
            raise LlamadeskError(
                f"the conversation store {self.path} was written by a newer llamadesk "
                f"(schema {version}, this one knows {SCHEMA_VERSION}); upgrade llamadesk"
            )
        if version == SCHEMA_VERSION:
            self._check_schema(db)
        _switch_to_wal(db)
        # In WAL mode NORMAL never corrupts the file; a commit survives the app being killed
        # (only an OS crash can lose the last one), and commits stay sub-millisecond.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        if version < SCHEMA_VERSION:
            _upgrade_checked(db, version)
            self._check_schema(db)
        # Reading works on a read-only file; say so now rather than at the first message.
        db.execute("BEGIN")
        try:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        finally:
            if db.in_transaction:  # SQLite rolls back by itself after some errors (a full disk)
                db.execute("ROLLBACK")

    @staticmethod
    def _check_tables(db: sqlite3.Connection, version: int) -> None:
        """A database holding tables that are not llamadesk's is not ours, and kept aside as it is:
        another program's (a browser's history, say) had ours added beside its own and was switched
        to WAL, and with a high user_version it was called a newer llamadesk's, which no upgrade makes it.

        A newer llamadesk may have added tables of its own, so a file that is newer still counts
        as ours when it holds every table of ours too.
        """
        tables = {
            name
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not name.startswith("sqlite_")  # SQLite's own (sqlite_sequence, sqlite_stat1)
        }
        others = sorted(tables - set(SCHEMA_COLUMNS))
        if others and (version <= SCHEMA_VERSION or not set(SCHEMA_COLUMNS) <= tables):
            named = " ".join(", ".join(others).split())  # one line: a table's name may hold a line break
            named = named if len(named) <= 100 else named[:97] + "..."
            raise _Damaged(f"its tables are not llamadesk's (it holds {named})")

    @staticmethod
    def _check_schema(db: sqlite3.Connection) -> None:
        for table, columns in SCHEMA_COLUMNS.items():
            try:
                db.execute(f"SELECT {columns} FROM {table} LIMIT 0")
            except sqlite3.Error as err:
                if _primary_code(err) in UNWRITABLE_CODES | DAMAGED_CODES:
                    raise
                raise _Damaged(f"its tables are not llamadesk's ({err})") from err

    def _reason(self, err: sqlite3.Error) -> str:
        """SQLite's words for `err`, except that a full disk is called one: SQLite says "disk I/O
        error" when it cannot grow the WAL index there, which reads as failing hardware."""
        if _primary_code(err) in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL):
            with contextlib.suppress(OSError):
                if shutil.disk_usage(self.path.parent).free < NEARLY_FULL_BYTES:
                    return DISK_FULL
        return str(err)

    def _unwritable_at_start(
        self, db: sqlite3.Connection | None, reason: str, code: int | None = None
    ) -> sqlite3.Connection:
        self.not_saved = f"the conversation store {self.path} cannot be written ({reason})"
        self.locked_out, self.disk_full = code in LOCK_CODES, reason == DISK_FULL
        self._notice(f"{self.not_saved}; {NOT_SAVED}")
        memory = self._memory(db, read_only_copy=not self.locked_out)
        if db is not None:
            db.close()
        return memory

    def _memory(self, source: sqlite3.Connection | None, read_only_copy: bool = False) -> sqlite3.Connection:
        """An in-memory store holding what `source` holds (when it can be read), at the latest schema.

        With `read_only_copy`, a source that cannot be read (a read-only folder where SQLite cannot
        make its WAL index, a full disk) is read again through a read-only connection to the file, so
        its conversations are still there to read. Never for a locked file: `immutable` would read it
        while another program writes it.
        """
        self._in_memory = True
        with contextlib.ExitStack() as scratch:  # removes what _copy_with_wal copied
            return self._memory_from(source, read_only_copy, scratch)

    def _memory_from(
        self, source: sqlite3.Connection | None, read_only_copy: bool, scratch: contextlib.ExitStack
    ) -> sqlite3.Connection:
        sources: list[Callable[[], sqlite3.Connection]] = [] if source is None else [lambda: source]
        if read_only_copy and self.path.is_file():
            uri = self.path.absolute().as_uri()
            sources.append(lambda: _connect(f"{uri}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S))
            if Path(f"{self.path}-wal").is_file():
                # Messages a killed writer left in the WAL, which `immutable` would not see: the file
                # and its WAL copied where SQLite may make the index and replay them.
                sources.append(lambda: self._copy_with_wal(scratch))
            # No WAL index can be made or read: the file as it is (a cleanly closed store holds it all).
            sources.append(lambda: _connect(f"{uri}?immutable=1", uri=True))
        for open_source in sources:
            memory = _connect(":memory:", isolation_level=None)
            opened = None
            try:
                opened = open_source()
                opened.backup(memory, progress=_give_up_when_locked)
                upgrade(memory, int(memory.execute("PRAGMA user_version").fetchone()[0]))
                memory.execute("PRAGMA foreign_keys=ON")
                return memory
            except (sqlite3.Error, OSError):  # OSError: the copy of a WAL could not be made
                memory.close()
            finally:
                if opened is not None and opened is not source:
                    opened.close()
        memory = _connect(":memory:", isolation_level=None)
        upgrade(memory, 0)
        # Started empty while the screen may still show conversations from the file: messages
        # must be accepted for conversations this copy never saw.
        self._fresh_memory = True
        return memory

    def _copy_with_wal(self, scratch: contextlib.ExitStack) -> sqlite3.Connection:
        copy = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="llamadesk-store-"))) / self.path.name
        for suffix in ("", "-wal"):
            shutil.copyfile(f"{self.path}{suffix}", f"{copy}{suffix}")
        return _connect(copy)

    def _set_aside(self, damaged: tuple[int, int] | None) -> Path | None:
        """Rename the damaged file (and its WAL files, which belong to it) to a dated name, if it is
        still the file at the store's path (`damaged`: its st_dev and st_ino); None, renaming
        nothing, if it is not.

        Several llamadesks opening a damaged store at once each find it damaged. Renaming whatever
        was at the path, one set aside the fresh store another had just started, with that one's
        new conversations written into the file set aside. So the file is compared with the one
        found damaged, and the comparison and the renames are one step, under a lock on the folder.
        """
        with _folder_locked(self.path.parent):
            if damaged is None or _identity(self.path) != damaged:
                return None
            stamp = time.strftime("%Y%m%d-%H%M%S")
            aside, n = self.path.with_name(f"{self.path.stem}.damaged-{stamp}{self.path.suffix}"), 2
            while any(Path(f"{aside}{suffix}").exists() for suffix in ("", "-wal", "-shm")):
                aside, n = self.path.with_name(f"{self.path.stem}.damaged-{stamp}-{n}{self.path.suffix}"), n + 1
            # The WAL files first: a WAL left beside a fresh file would be replayed into it.
            for suffix in ("-wal", "-shm", ""):
                source = Path(f"{self.path}{suffix}")
                if source.exists() or source.is_symlink():
                    os.rename(source, f"{aside}{suffix}")
            return aside

    def _run(self, action: Callable[[sqlite3.Connection], object]):
        """`action` on the database; when the file fails under it, on an in-memory copy instead."""
        while True:
            try:
                return action(self._db)
            except sqlite3.Error as err:
                code = _primary_code(err)
                if self._fresh_memory or code not in UNWRITABLE_CODES | DAMAGED_CODES:
                    raise
                self._fall_back(err)

    def _fall_back(self, err: sqlite3.Error) -> None:
        with contextlib.suppress(sqlite3.Error):
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        if self.not_saved is None:
            reason = self._reason(err)
            self.not_saved = f"the conversation store {self.path} cannot be written any more ({reason})"
            self.locked_out, self.disk_full = _primary_code(err) in LOCK_CODES, reason == DISK_FULL
            self._notice(f"{self.not_saved}; {NOT_SAVED}")
        previous = self._db
        # A file that fails is copied into memory; a copy that fails too is replaced by an empty one.
        self._db = self._memory(
            None if self._in_memory else previous,
            read_only_copy=not self._in_memory and _primary_code(err) in UNWRITABLE_CODES - LOCK_CODES,
        )
        with contextlib.suppress(sqlite3.Error):
            previous.close()

    # -- schema -----------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        return int(self._run(lambda db: db.execute("PRAGMA user_version").fetchone()[0]))

    def integrity_check(self) -> str:
        """SQLite's own check of the file: 'ok' when it is sound."""
        return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    # -- conversations ----------------------------------------------------------------------

    def new_conversation(self, title: str, settings: ConversationSettings) -> Conversation:
        now = time.time()
        values = (title, *_settings_columns(settings), now, now)
        cursor = self._run(
            lambda db: db.execute(
                "INSERT INTO conversations (title, model, system_prompt, temperature, top_p, max_tokens,"
                " context_length, repeat_penalty, adapters, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        )
        return Conversation(int(cursor.lastrowid), title, settings, now, now)

    def conversations(self, title_contains: str = "") -> list[Conversation]:
        """Conversations, most recently active first; only those whose title contains the text."""
        pattern = "%" + title_contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        # As text whatever it holds: a title edited in as bytes (a BLOB) or NULL matched no pattern,
        # so the conversation vanished from the list and from --continue.
        rows = self._rows(
            "SELECT * FROM conversations WHERE COALESCE(CAST(title AS TEXT), '') LIKE ? ESCAPE '\\' "
            "ORDER BY updated DESC, id DESC",
            (pattern,),
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

        def read(db: sqlite3.Connection) -> list[sqlite3.Row]:
            cursor = db.cursor()
            cursor.row_factory = sqlite3.Row
            return cursor.execute(sql, parameters).fetchall()

        return self._run(read)

    def _execute(self, sql: str, parameters: tuple = ()) -> sqlite3.Cursor:
        return self._run(lambda db: db.execute(sql, parameters))

    def rename(self, conversation_id: int, title: str) -> None:
        self._execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id))

    def update_settings(self, conversation_id: int, settings: ConversationSettings) -> None:
        self._execute(
            "UPDATE conversations SET model = ?, system_prompt = ?, temperature = ?, top_p = ?,"
            " max_tokens = ?, context_length = ?, repeat_penalty = ?, adapters = ? WHERE id = ?",
            (*_settings_columns(settings), conversation_id),
        )

    def set_memory_start(self, conversation_id: int, message_id: int | None) -> None:
        """Remember where the model's memory began in the latest reply (None: at the first message)."""
        self._execute("UPDATE conversations SET memory_start_id = ? WHERE id = ?", (message_id, conversation_id))

    def delete(self, conversation_id: int) -> None:
        self._execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # -- messages ---------------------------------------------------------------------------

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        rows = self._run(
            lambda db: db.execute(
                "SELECT id, conversation_id, role, content, state, created FROM messages"
                " WHERE conversation_id = ? ORDER BY id",
                (conversation_id,),
            ).fetchall()
        )
        return [_message(*row) for row in rows]

    def add_message(
        self, conversation_id: int, role: Role, content: str, state: MessageState = "complete"
    ) -> StoredMessage:
        """Append a message and commit it (a reply that starts streaming is added 'interrupted')."""
        now = time.time()

        def add(db: sqlite3.Connection) -> sqlite3.Cursor:
            # One transaction: the message and the conversation's last activity, or neither.
            db.execute("BEGIN")
            try:
                cursor = db.execute(
                    "INSERT INTO messages (conversation_id, role, content, state, created) VALUES (?, ?, ?, ?, ?)",
                    (conversation_id, role, content, state, now),
                )
                db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (now, conversation_id))
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            return cursor

        try:
            cursor = self._run(add)
        except sqlite3.IntegrityError as err:
            if "FOREIGN KEY" not in str(err):
                raise
            raise ConversationDeleted(
                f"conversation {conversation_id} was deleted elsewhere (in another window or program); "
                "this message was not saved"
            ) from None
        return StoredMessage(int(cursor.lastrowid), conversation_id, role, content, state, now)

    def update_message(self, message: StoredMessage, content: str, state: MessageState) -> StoredMessage:
        self._execute("UPDATE messages SET content = ?, state = ? WHERE id = ?", (content, state, message.id))
        return replace(message, content=content, state=state)

    def delete_message(self, message_id: int) -> None:
        self._execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def has_message(self, message_id: int) -> bool:
        """Whether the message is still stored (deleting its conversation elsewhere takes it too)."""
        row = self._run(lambda db: db.execute("SELECT 1 FROM messages WHERE id = ?", (message_id,)).fetchone())
        return row is not None

    # -- translation history ----------------------------------------------------------------

    def add_translation(
        self, source_language: str, target_language: str, source: str, translation: str, model: str
    ) -> StoredTranslation:
        """Remember one finished translation (language codes, both texts, the model's name)."""
        now = time.time()
        cursor = self._execute(
            "INSERT INTO translations (source_language, target_language, source, translation, model, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (source_language, target_language, source, translation, model, now),
        )
        return StoredTranslation(
            int(cursor.lastrowid or 0), source_language, target_language, source, translation, model, now
        )

    def translations(self, limit: int = 50) -> list[StoredTranslation]:
        """The most recent translations, newest first."""
        rows = self._run(
            lambda db: db.execute(
                "SELECT id, source_language, target_language, source, translation, model, created"
                " FROM translations ORDER BY created DESC, id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [StoredTranslation(*row) for row in rows]


# A time a row may hold: from 1970 to the year 5138 (time.localtime takes it on every platform).
LATEST_TIME = 1e11


def _text(value: object) -> str:
    """A text column as text: a value edited in as bytes or a number is shown, not a crash later."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return "" if value is None else str(value)


def _time(value: object) -> float:
    """A time column as seconds since 1970 (0 when it holds no usable time)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= LATEST_TIME:
        return float(value)
    return 0.0


def _message(
    message_id: int, conversation_id: int, role: object, content: object, state: object, created: object
) -> StoredMessage:
    """A message as stored, each column made usable (rows edited by hand or damaged: `chat --list`
    crashed on a text `updated`, and a BLOB message was blamed on the model's chat template)."""
    return StoredMessage(
        message_id,
        conversation_id,
        _text(role),  # type: ignore[arg-type]
        _text(content),
        state if state in ("complete", "interrupted") else "interrupted",  # type: ignore[arg-type]
        _time(created),
    )


def _conversation(row: sqlite3.Row) -> Conversation:
    """A conversation as stored; each setting checked, a bad one replaced by its default and named."""
    values: dict[str, object] = {}
    problems: list[tuple[str, str]] = []
    for name, (check, default) in STORED_SETTINGS.items():
        try:
            values[name] = check(row[name], name)
        except BadInputError as err:
            values[name] = default
            problems.append((name, str(err)))
    settings = ConversationSettings(**values)  # type: ignore[arg-type]
    start = row["memory_start_id"]
    # Only where the next reply starts reading; a damaged value starts it at the first message.
    memory_start_id = start if type(start) is int else None
    return Conversation(
        row["id"],
        _text(row["title"]),
        settings,
        _time(row["created"]),
        _time(row["updated"]),
        tuple(problems),
        memory_start_id,
    )
