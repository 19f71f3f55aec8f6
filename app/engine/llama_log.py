"""Where llama.cpp's log goes: nowhere a user has to read it, unless they ask.

llama.cpp logs through one process-wide callback. llama-cpp-python installs its own, which is
meant to keep quiet unless `verbose`, but its level table predates ggml's current enum (NONE 0,
DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5), so warnings pass as errors: Ctrl-C during a long prompt
printed "decode: removing memory module entries for seq_id = 0, ..." above llamadesk's own
one-line "stopped". llamadesk reports every failure itself, in words meant for the user, so the
log is dropped; LLAMADESK_LLAMA_LOG=1 passes it to stderr for debugging a model (except while a
model loads: llama-cpp-python silences stderr itself then).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Callable, Iterator

import llama_cpp.llama_cpp as llama

LOG_ENV = "LLAMADESK_LLAMA_LOG"


def _to_stderr(_level: int, text: bytes, _data: ctypes.c_void_p) -> None:
    sys.stderr.write(text.decode("utf-8", errors="replace"))


# Module globals: llama.cpp keeps the pointers, so the ctypes objects must live as long as the process.
# The log is dropped by a builtin that takes any three arguments and runs no Python code (the slice
# it makes is thrown away). With a Python function there, llama.cpp's few hundred lines per model
# load ran Python inside its callback, so Ctrl-C or SIGTERM during a load was raised there, where
# ctypes prints the exception as "ignored" and drops it: the command loaded on and ran to the end.
# With no Python in the callback, the signal is raised as soon as the load returns to Python.
_DROP = llama.llama_log_callback(slice)
_TO_STDERR = llama.llama_log_callback(_to_stderr)


def use_default_log() -> None:
    """Drop llama.cpp's log, or pass it to stderr when LLAMADESK_LLAMA_LOG is set."""
    wanted = os.environ.get(LOG_ENV, "") not in ("", "0")
    llama.llama_log_set(_TO_STDERR if wanted else _DROP, ctypes.c_void_p(0))


@contextlib.contextmanager
def log_sent_to(sink: Callable[[str], None]) -> Iterator[None]:
    """Give every line llama.cpp logs meanwhile to `sink` (to read its load report), then the default."""
    callback = llama.llama_log_callback(lambda _level, text, _data: sink(text.decode("utf-8", errors="replace")))
    llama.llama_log_set(callback, ctypes.c_void_p(0))
    try:
        yield
    finally:
        use_default_log()
