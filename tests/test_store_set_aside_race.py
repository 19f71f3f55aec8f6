"""Several llamadesks opening one damaged store at once set aside the damaged file, and only it.

Each found the file damaged and renamed whatever was at the store's path: the second one renamed
the fresh store the first had just started (four `chat --list` at once left two files aside in 3
rounds of 12), and the first then wrote its new conversation into the file set aside.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sqlite3

from llamadesk.app.chat.store import ConversationSettings, Store

SETTINGS = ConversationSettings()
JUNK = b"this is not sqlite" * 100


def _asides(path):
    return sorted(path.parent.glob(f"{path.stem}.damaged-*{path.suffix}"))


def test_a_damaged_file_another_llamadesk_replaced_meanwhile_is_not_set_aside_again(tmp_path, monkeypatch):
    path = tmp_path / "c.sqlite3"
    path.write_bytes(JUNK)
    set_aside = Store._set_aside
    other_notices: list[str] = []
    others: list[Store] = []

    def another_llamadesk_first(self, damaged):
        # Between finding the file damaged and setting it aside, another llamadesk does both and
        # starts a fresh store, where it goes on writing.
        monkeypatch.setattr(Store, "_set_aside", set_aside)
        other = Store(path, on_notice=other_notices.append)
        other.new_conversation("the other's", SETTINGS)
        others.append(other)
        return set_aside(self, damaged)

    monkeypatch.setattr(Store, "_set_aside", another_llamadesk_first)
    notices: list[str] = []
    mine = Store(path, on_notice=notices.append)
    (other,) = others
    (aside,) = _asides(path)
    assert aside.read_bytes() == JUNK
    assert len(other_notices) == 1 and aside.name in other_notices[0]
    assert notices == [] and mine.not_saved is None  # the fresh store, opened as any sound one
    assert [c.title for c in mine.conversations()] == ["the other's"]
    other.new_conversation("the other's second", SETTINGS)
    mine.new_conversation("mine", SETTINGS)
    other.close()
    mine.close()
    with contextlib.closing(sqlite3.connect(path)) as raw:  # all of it in the store, none in the file set aside
        titles = sorted(title for (title,) in raw.execute("SELECT title FROM conversations"))
    assert titles == ["mine", "the other's", "the other's second"]
    assert aside.read_bytes() == JUNK


def test_a_store_set_aside_as_it_was_checked_is_opened_again_not_kept_in_memory(tmp_path, monkeypatch):
    # SQLite says "disk I/O error" when another llamadesk renames the WAL files of the file being
    # checked: that is not a store that cannot be written, and the session was not saved.
    path = tmp_path / "c.sqlite3"
    path.write_bytes(JUNK)
    prepare = Store._prepare
    other_notices: list[str] = []

    def set_aside_meanwhile(self, db):
        monkeypatch.setattr(Store, "_prepare", prepare)
        Store(path, on_notice=other_notices.append).close()
        moved = sqlite3.OperationalError("disk I/O error")
        moved.sqlite_errorcode = sqlite3.SQLITE_IOERR_SHMMAP
        raise moved

    monkeypatch.setattr(Store, "_prepare", set_aside_meanwhile)
    notices: list[str] = []
    mine = Store(path, on_notice=notices.append)
    assert notices == [] and mine.not_saved is None and len(other_notices) == 1
    mine.new_conversation("mine", SETTINGS)
    mine.close()
    (aside,) = _asides(path)
    assert aside.read_bytes() == JUNK
    reopened = Store(path)
    assert [c.title for c in reopened.conversations()] == ["mine"]
    reopened.close()


def _open_at_once(path: str, barrier, results) -> None:
    """One of several llamadesks (`chat --list` in four terminals) opening the damaged store together."""
    notices: list[str] = []
    barrier.wait(timeout=30)
    store = Store(path, on_notice=notices.append)
    store.new_conversation(f"from {os.getpid()}", SETTINGS)
    results.put((notices, store.not_saved))
    store.close()


def _truncated_store(path):
    store = Store(path, on_notice=lambda _line: None)
    conversation = store.new_conversation("before", SETTINGS)
    for n in range(40):
        store.add_message(conversation.id, "user", f"message {n} " * 40)
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 100])
    return path.read_bytes()


def test_processes_opening_a_damaged_store_at_once_set_aside_only_the_damaged_file(tmp_path):
    context = multiprocessing.get_context("fork")
    for attempt in range(8):
        path = tmp_path / f"round-{attempt}" / "c.sqlite3"
        path.parent.mkdir()
        damaged = _truncated_store(path)
        barrier, results = context.Barrier(4), context.Queue()
        openers = [context.Process(target=_open_at_once, args=(str(path), barrier, results)) for _ in range(4)]
        for opener in openers:
            opener.start()
        outcomes = [results.get(timeout=60) for _ in openers]
        for opener in openers:
            opener.join(timeout=30)
        (aside,) = _asides(path)
        assert aside.read_bytes() == damaged, f"round {attempt}"
        notices = [line for lines, _not_saved in outcomes for line in lines]
        assert len(notices) == 1 and aside.name in notices[0], (attempt, notices)
        assert [not_saved for _lines, not_saved in outcomes] == [None] * 4
        with contextlib.closing(sqlite3.connect(path)) as raw:  # each one's conversation in the store at its path
            assert raw.execute("SELECT count(*) FROM conversations").fetchone()[0] == 4, f"round {attempt}"
