"""Ctrl-C and SIGTERM reach a decode in progress, not only the Python after it.

Python runs a signal's handler in the main thread between bytecodes, so a Ctrl-C pressed while
the main thread is inside llama_decode (one prompt step of 512 tokens: seconds here, a minute on
a Pi with a larger model) was handled only once that step returned. What Python's C-level handler
does at once is write the signal's number to the wakeup fd (signal.set_wakeup_fd). A thread
blocked reading that fd runs as soon as the byte arrives, since ctypes releases the GIL for the
whole llama_decode call, and calls `wake`: the engine's stop flag, which llama.cpp reads between
graph nodes (engine/stop_flag.py), so the step is abandoned within milliseconds. The Python
handlers then run as before when the decode returns (Ctrl-C stops the reply, SIGTERM ends the
command).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator

WAKING_SIGNALS = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None)) if s is not None)


@contextlib.contextmanager
def signals_wake(wake: Callable[[], None]) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM call `wake` from a watcher thread the moment they arrive.

    `wake` must be safe from any thread and harmless twice. Off the main thread (where Python
    allows no wakeup fd) nothing is watched and only the Python handlers act, after the decode.
    """
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # the C handler must never block in a signal
    try:
        previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    except ValueError:  # not the main thread
        os.close(read_end)
        os.close(write_end)
        yield
        return

    def watch() -> None:
        while True:
            try:
                received = os.read(read_end, 64)
            except OSError:
                return
            if not received:  # the write end closed: the block is over
                return
            if any(number in received for number in WAKING_SIGNALS):
                wake()

    watcher = threading.Thread(target=watch, name="signal-wake", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        os.close(write_end)
        watcher.join(timeout=5)
        os.close(read_end)
