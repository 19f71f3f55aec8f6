"""The prompt cache on disk: each conversation's KV cache, kept between runs of the app and the CLI.

Reading a 3,000-token conversation again costs seconds on a laptop and minutes on a Pi. After a
reply, the engine's KV cache (engine/sequence_state.py) is written to one file per conversation and
model; when the conversation goes on, in this run or a later one, the longest prefix of the new
prompt that the file holds is loaded back and only the tokens after it are decoded.

What keeps it from ever changing an answer: a file is only used for the model file and settings it
was made with (their digest is in its name and its header), only the tokens it holds that match the
new prompt from the first one on are reused, and its bytes must match the SHA-256 it carries before
llama.cpp sees them. A file that is stale, cut short, damaged or someone else's is ignored (and
removed), and the prompt is decoded as if there were no cache; nothing here raises.

What keeps it from getting in the way: the copy out of llama.cpp happens after the reply's last
token was shown, and hashing and writing happen in a thread of their own. The files stay within a
budget (by default a tenth of the free disk, at most 4 GiB; 0 writes nothing), the least recently
used going first; a budget lowered since they were written is kept from when the cache is opened.

The file: a fixed header (magic, identity digest, conversation id, token count, state size, payload
digest), the tokens as little-endian int32, then llama.cpp's sequence state.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import shutil
import stat
import struct
import sys
import threading
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from llamadesk.app.core.atomic_file import atomic_output
from llamadesk.app.core.paths import data_dir
from llamadesk.app.engine.token_prefix import common_prefix

if TYPE_CHECKING:  # the engine's value type only: importing sequence_state would load llama.cpp
    from llamadesk.app.engine.sequence_state import SequenceSnapshot

CACHE_FOLDER = "prompt-cache"
SUFFIX = ".kvc"
MAGIC = b"LDKVC01\n"  # the format's version is part of the magic: another version is ignored
HEADER = struct.Struct("<8s32sqIQ32s")  # magic, identity digest, conversation, tokens, state bytes, payload digest
TOKEN = struct.Struct("<i")
MAX_TOKENS = 1 << 24  # far beyond any context llama.cpp loads; a count past it is damage
DEFAULT_SHARE_OF_FREE_DISK = 0.10
DEFAULT_MAX_BUDGET = 4 * 1024**3
MIN_FREE_AFTER_WRITE = 256 * 1024**2  # never the write that fills the disk
STALE_PART_AGE_S = 3600  # a temporary file this old was left by a killed writer
_READ_CHUNK = 8 * 1024**2


@runtime_checkable
class CachingEngine(Protocol):
    """What the cache needs of an engine (llama_engine.Engine); a fake engine without it is simply not cached."""

    def state_identity(self) -> dict[str, object]: ...

    def cached_prefix(self, tokens: Sequence[int]) -> int: ...

    def save_sequence(self) -> SequenceSnapshot | None: ...

    def restore_sequence(self, tokens: Sequence[int], state: bytearray) -> bool: ...


def default_cache_folder() -> Path:
    return data_dir() / CACHE_FOLDER


def default_budget(folder: Path) -> int:
    """A tenth of the disk's free space, at most 4 GiB: enough for dozens of long conversations."""
    try:
        free = shutil.disk_usage(_existing_parent(folder)).free
    except OSError:
        return 0
    return int(min(DEFAULT_MAX_BUDGET, free * DEFAULT_SHARE_OF_FREE_DISK))


def budget_from_megabytes(megabytes: int | None, folder: Path) -> int:
    """config.json's prompt_cache_mb in bytes: None sizes it from the free disk, 0 turns the cache off."""
    return default_budget(folder) if megabytes is None else megabytes * 1024**2


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def identity_digest(identity: dict[str, object]) -> bytes:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode("utf-8")).digest()


@dataclass(frozen=True)
class CacheUsage:
    """What `doctor` shows: where the cache is, how much it may and does hold."""

    folder: Path
    budget: int
    used: int
    files: int


@dataclass(frozen=True)
class CacheHeader:
    identity: bytes
    conversation: int
    n_tokens: int
    n_state: int
    payload_digest: bytes


def read_header(data: bytes, file_size: int) -> CacheHeader | None:
    """The header of a cache file of `file_size` bytes, or None when it is not a sound one of ours."""
    if len(data) < HEADER.size:
        return None
    magic, identity, conversation, n_tokens, n_state, digest = HEADER.unpack_from(data)
    if magic != MAGIC or not 0 < n_tokens <= MAX_TOKENS or n_state == 0:
        return None
    if file_size != HEADER.size + n_tokens * TOKEN.size + n_state:  # cut short, or something appended
        return None
    return CacheHeader(identity, conversation, n_tokens, n_state, digest)


def _has_cache_header(path: Path, size: int) -> bool:
    try:
        # Non-blocking: a FIFO swapped in since the folder was listed must not hold the caller.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as file:
            return read_header(file.read(HEADER.size), size) is not None
    except OSError:
        return False


class PromptCache:
    """One folder of cache files within a byte budget, and the thread that writes them.

    `restore` and `save` run in the engine's thread (they touch the model); the writing, the
    hashing and the eviction happen in the cache's own thread. Every method swallows what the
    disk does wrong: a cache that cannot work is a slower app, never a broken one.
    """

    def __init__(self, folder: Path | None = None, budget: int | None = None, *, trim: bool = True):
        self.folder = folder if folder is not None else default_cache_folder()
        self.budget = default_budget(self.folder) if budget is None else max(0, budget)
        self.problem: str | None = None  # the last thing that went wrong, for doctor and tests
        self.restored_tokens = 0  # what the last restore gave (0: nothing was loaded from disk)
        self._jobs: queue.Queue[tuple[Path, bytes, int, SequenceSnapshot] | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()
        # Down to the budget at once: a budget lowered since the files were written (0 in config.json,
        # "keeps nothing") removed none of them, and they stayed on disk unused. Not for a cache
        # opened only to report on it (doctor, trim=False): looking removes nothing.
        if trim:
            self._evict(keep_free=0, writing=None)

    @property
    def enabled(self) -> bool:
        return self.budget > 0

    def path_for(self, conversation_id: int, identity: bytes) -> Path:
        return self.folder / f"c{conversation_id}-{identity.hex()[:16]}{SUFFIX}"

    # -- reading (engine thread) ------------------------------------------------------------

    def restore(self, engine: object, conversation_id: int, prompt_tokens: Sequence[int]) -> int:
        """Load the conversation's saved KV cache into `engine` when it holds more of the prompt than
        the engine's memory does; returns how many prompt tokens it gave (0: nothing loaded)."""
        self.restored_tokens = 0
        if not self.enabled or not isinstance(engine, CachingEngine) or not prompt_tokens:
            return 0  # budget 0 turns the cache off: what an earlier budget left is not used either
        try:
            identity = identity_digest(engine.state_identity())
            path = self.path_for(conversation_id, identity)
            loaded = self._load(path, identity, conversation_id, prompt_tokens, engine.cached_prefix(prompt_tokens))
            if loaded is None:
                return 0
            tokens, state, usable = loaded
            if not engine.restore_sequence(tokens, state):
                self._discard(path, "llama.cpp did not accept the saved state")
                return 0
            with contextlib.suppress(OSError):
                os.utime(path)  # used now: the last to be evicted
            self.restored_tokens = usable
            return usable
        except (OSError, ValueError, MemoryError) as err:
            self.problem = f"could not read the prompt cache ({err})"
            return 0

    def _load(
        self, path: Path, identity: bytes, conversation_id: int, prompt: Sequence[int], in_memory: int
    ) -> tuple[array, bytearray, int] | None:
        """The file's tokens and state when they hold more of `prompt` than memory does, checked; else None."""
        try:
            # Non-blocking: a FIFO put in the file's place must not hang the reply.
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return None  # no cache for this conversation yet: the usual case
        with open(fd, "rb") as file:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode):
                self._discard(path, "not a regular file")
                return None
            size = status.st_size
            header = read_header(file.read(HEADER.size), size)
            if header is None or header.identity != identity or header.conversation != conversation_id:
                self._discard(path, "not a prompt cache file for this conversation and model")
                return None
            raw_tokens = file.read(header.n_tokens * TOKEN.size)
            tokens = array("i")
            tokens.frombytes(raw_tokens)
            if sys.byteorder != "little":
                tokens.byteswap()
            usable = common_prefix(tokens, prompt)
            if usable <= in_memory:
                return None  # the engine already holds as much (the same run), or the file shares too little
            state = bytearray(header.n_state)
            view = memoryview(state)
            digest = hashlib.sha256(raw_tokens)
            filled = 0
            while filled < header.n_state:
                n = file.readinto(view[filled : filled + _READ_CHUNK])
                if not n:
                    self._discard(path, "the file was cut short")
                    return None
                digest.update(view[filled : filled + n])
                filled += n
            if digest.digest() != header.payload_digest:
                self._discard(path, "the file is damaged (its checksum does not match)")
                return None
            return tokens, state, usable

    def _discard(self, path: Path, why: str) -> None:
        self.problem = f"{path.name}: {why}; ignored"
        with contextlib.suppress(OSError):
            path.unlink()

    # -- writing (engine thread, then the writer's) ------------------------------------------

    def save(self, engine: object, conversation_id: int) -> None:
        """Copy the engine's KV cache now and write it in the background (call after the reply is shown)."""
        if not self.enabled or not isinstance(engine, CachingEngine):
            return
        try:
            identity = identity_digest(engine.state_identity())
            snapshot = engine.save_sequence()
        except (OSError, MemoryError) as err:
            self.problem = f"could not copy the KV cache ({err})"
            return
        if snapshot is None:
            return
        self._start_writer()
        self._jobs.put((self.path_for(conversation_id, identity), identity, conversation_id, snapshot))

    def _start_writer(self) -> None:
        with self._lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_jobs, name="prompt-cache-writer", daemon=True)
                self._writer.start()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued file is written (the CLI before it exits); False if time ran out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._jobs.unfinished_tasks:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _write_jobs(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                self._write(*job)
            except Exception as err:  # noqa: BLE001 - the cache must never take the app down
                self.problem = f"could not write the prompt cache ({type(err).__name__}: {err})"
            finally:
                self._jobs.task_done()

    def _write(self, path: Path, identity: bytes, conversation_id: int, snapshot: SequenceSnapshot) -> None:
        tokens = array("i", snapshot.tokens)
        if sys.byteorder != "little":
            tokens.byteswap()
        raw_tokens = tokens.tobytes()
        state = snapshot.state
        size = HEADER.size + len(raw_tokens) + state.nbytes
        if size > self.budget:
            return  # one conversation larger than the whole budget is not kept
        self.folder.mkdir(parents=True, exist_ok=True)
        if shutil.disk_usage(self.folder).free - size < MIN_FREE_AFTER_WRITE:
            self.problem = "the disk is nearly full; the prompt cache is not written"
            return
        self._evict(keep_free=size, writing=path)
        digest = hashlib.sha256(raw_tokens)
        digest.update(state)
        header = HEADER.pack(MAGIC, identity, conversation_id, len(snapshot.tokens), state.nbytes, digest.digest())
        with atomic_output(path, force=True) as tmp, open(tmp, "wb") as out:
            out.write(header)
            out.write(raw_tokens)
            out.write(state)
        self._remove_stale(conversation_id, keep=path)

    def _remove_stale(self, conversation_id: int, keep: Path) -> None:
        """A conversation keeps one cache, for the model and settings it used last: files made under
        another identity (the model file changed, another KV type, a llama.cpp upgrade) can never be
        read again, and stayed until the budget filled."""
        for stale in self.folder.glob(f"c{conversation_id}-*{SUFFIX}"):
            if stale != keep:
                with contextlib.suppress(OSError):
                    stale.unlink()

    # -- the budget ---------------------------------------------------------------------------

    def _files(self) -> list[tuple[float, int, Path]]:
        """(last use, size, path) of every cache file, least recently used first."""
        found = []
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return []
        now = time.time()
        for entry in entries:
            try:
                status = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if entry.name.endswith(".part") and now - status.st_mtime > STALE_PART_AGE_S:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            elif entry.name.endswith(SUFFIX) and entry.is_file(follow_symlinks=False):
                found.append((status.st_mtime, status.st_size, Path(entry.path)))
        return sorted(found)

    def _evict(self, keep_free: int, writing: Path | None) -> None:
        """Remove the least recently used files until `keep_free` more bytes fit in the budget."""
        files = [f for f in self._files() if f[2] != writing]  # the file being replaced goes anyway
        used = sum(size for _, size, _ in files)
        for _, size, path in files:
            if used + keep_free <= self.budget:
                break
            with contextlib.suppress(OSError):
                path.unlink()
            used -= size

    def forget(self, conversation_id: int) -> None:
        """Remove a conversation's files (it was deleted)."""
        for path in self.folder.glob(f"c{conversation_id}-*{SUFFIX}"):
            with contextlib.suppress(OSError):
                path.unlink()

    def usage(self) -> CacheUsage:
        """The budget and what the cache files use: only files whose header is a cache file's count
        (something else named *.kvc is not the cache's, and doctor counted it)."""
        files = [(size, path) for _, size, path in self._files() if _has_cache_header(path, size)]
        return CacheUsage(self.folder, self.budget, sum(size for size, _ in files), len(files))

    def close(self, timeout: float | None = None) -> None:
        """Finish the queued writes (up to `timeout`) and end the writer thread."""
        self.flush(timeout)
        with self._lock:
            if self._writer is not None and self._writer.is_alive():
                self._jobs.put(None)
