"""Stopping Python code that runs in some thread: when its deadline passes, or when asked from anywhere.

A chat template is a program written by whoever made the GGUF, and Jinja runs it as Python
bytecode in the engine's thread. A hostile one loops for hours (two nested `range(99999)`), and
Python offers one way to stop a thread from outside: `PyThreadState_SetAsyncExc`, which makes
that thread raise an exception at its next bytecode boundary (what Ctrl-C does to the main
thread, for any thread). A watchdog thread uses it at the deadline; `interrupt()` uses it for Esc
in the TUI or Ctrl-C in the CLI.

Why this and not the alternatives (bench/template_guard.py measures them, bench/RESULTS.md): a
trace function (`sys.settrace`) checking a deadline per line makes every render 5-9x slower, and
templates render on every message and every context fit; a counting `range()` misses loops over
strings and recursive macros; a child process per render costs ~40 ms with a model loaded (and
forking the TUI's threaded process is unsafe). Here a call that ends normally costs 2-15 us (idle
to busy machine), whatever the template does.

A sent exception is always received, never cancelled: on CPython 3.11, clearing a pending one
(`PyThreadState_SetAsyncExc(id, NULL)`) still raises the interpreter-wide "asynchronous exception
pending" flag, and only a thread that raises its exception lowers it again. Left up, the flag
costs nothing until a trace function is installed (coverage.py, a debugger, a profiler); then
every thread loops forever at its next function entry. So end() lets an exception that was sent
but has not surfaced yet arrive in a loop of its own and catches it there.

What it cannot stop: a single long C call (`'x' * 10**10` computes in C without a bytecode
boundary); chat_template.py caps sizes so that no single operation is long.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
_set_async_exc.restype = ctypes.c_int


class _Interrupt(BaseException):
    """Raised inside the guarded code. A BaseException, so the guarded code's `except Exception` cannot swallow it."""


class Stopped(Exception):
    """The guarded call was interrupted; `reason` is "deadline" or what interrupt() was given."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Run:
    """One guarded call in one thread.

    The guarded thread itself never takes a lock: an asynchronous exception can land at any
    bytecode, also between a lock's acquire and the `with` block that would release it, and a lock
    leaked that way would hang the thread's next end() for good. Interrupters from other threads
    take `lock` among themselves and mark themselves in flight; end() marks the run done, waits for
    an interrupter already past its check, then receives what it may have sent.
    """

    def __init__(self, seconds: float) -> None:
        self.thread = threading.get_ident()
        self.deadline = time.monotonic() + seconds
        self.lock = threading.Lock()  # other threads only, never the guarded one, never a signal handler
        self.done = False
        self.sent = False  # an exception was handed to the guarded thread from another thread
        self.received = False  # ... and the guarded thread has raised it
        self._in_flight = False  # an interrupter from another thread is between its check and its send
        self._claims: list[tuple[object, str]] = []

    def claim(self, reason: str) -> bool:
        """Whether this caller is the first to interrupt the run. Lock-free (list.append is atomic)."""
        token = object()
        self._claims.append((token, reason))
        return self._claims[0][0] is token

    @property
    def reason(self) -> str | None:
        return self._claims[0][1] if self._claims else None

    def interrupt(self, reason: str) -> None:
        if self.thread == threading.get_ident():
            # A signal handler (Ctrl-C) running in the guarded thread itself: raise right here,
            # which unwinds the guarded code exactly as an asynchronous exception would.
            if not self.done and self.claim(reason):
                raise _Interrupt
            return
        with self.lock:
            # In flight before reading `done`: an end() that has set `done` and then sees no
            # interrupter in flight knows none will send after it (the GIL orders these steps).
            self._in_flight = True
            try:
                if not self.done and self.claim(reason):
                    self.send()
            finally:
                self._in_flight = False

    def send(self) -> None:
        """Hand the exception to the guarded thread (again: the newest replaces one still pending)."""
        self.sent = True
        _set_async_exc(self.thread, ctypes.py_object(_Interrupt))

    def end(self) -> None:
        """No interrupt can reach the thread after this returns. Idempotent, and safe to re-run when
        the interrupt lands inside it (the caller marks it received and calls end() again)."""
        self.done = True
        while self._in_flight:
            time.sleep(0)  # an interrupter is sending: let it finish (a few bytecodes)
        if self.sent and not self.received:
            self._receive()

    def _receive(self) -> None:
        """Raise the pending exception here and catch it, which lowers the interpreter's flag.

        It surfaces at this thread's next check for pending work, within a few loop turns; sending
        it again first makes sure the flag is up for it (another thread that raised its own
        exception in between may have lowered it). The time limit is a fuse that never blows in
        practice; past it the pending exception is dropped the old way."""
        give_up = time.monotonic() + 1.0
        try:
            while time.monotonic() < give_up:
                _set_async_exc(self.thread, ctypes.py_object(_Interrupt))
                time.sleep(0)
        except _Interrupt:
            self.received = True
            return
        _set_async_exc(self.thread, ctypes.py_object())  # never seen: drop it, whatever the flag does


class Interruptible:
    """Runs one call at a time that a deadline or any thread can stop.

    guard = Interruptible()
    guard.call(5.0, render)     # in the worker; raises Stopped("deadline") after 5 s
    guard.interrupt()           # from any thread: that call raises Stopped("stopped")
    """

    def __init__(self) -> None:
        self._run: _Run | None = None

    def call(self, seconds: float, function: Callable[[], T]) -> T:
        """function(), unless it runs past `seconds` or interrupt() is called first: then Stopped."""
        run = _Run(seconds)
        try:
            try:
                # Watched before interrupt() can reach the run: no interrupt may land while watch()
                # holds the watchdog's lock (it would leak it, and every later call would hang).
                # The watchdog itself sees the run only after watch() has let go of that lock.
                _WATCHDOG.watch(run)
                self._run = run
                return function()
            finally:
                self._run = None
                run.end()
        except _Interrupt:
            # It may have landed inside the first end(); ending again completes it. Nothing else is
            # pending: each run is claimed once, and end() sends only to receive it itself.
            run.received = True
            run.end()
            raise Stopped(run.reason or "stopped") from None

    def interrupt(self, reason: str = "stopped") -> None:
        """Stop the call in progress, if any; safe from any thread and from a signal handler."""
        run = self._run
        if run is not None:
            run.interrupt(reason)


class _Watchdog:
    """One thread for the whole process that interrupts runs at their deadline.

    It sleeps until the earliest deadline; a run that ends in time is simply dropped at the next
    wake-up. Starting a run wakes it only when the run's deadline comes before that wake-up (after
    an idle spell, or for a shorter limit), so a burst of renders (one per context-fit step)
    costs one wake-up, not one each.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._runs: list[_Run] = []
        self._thread: threading.Thread | None = None
        self._wake_at = math.inf

    def watch(self, run: _Run) -> None:
        with self._cond:
            self._runs.append(run)
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="llamadesk-deadlines", daemon=True)
                self._thread.start()
            elif run.deadline < self._wake_at:
                self._wake_at = run.deadline
                self._cond.notify()

    def _serve(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for run in self._runs:
                    if run.deadline <= now and not run.done:
                        run.interrupt("deadline")
                self._runs = [r for r in self._runs if not r.done and r.reason is None]
                self._wake_at = min((r.deadline for r in self._runs), default=math.inf)
                self._cond.wait(None if self._wake_at == math.inf else self._wake_at - now)

    def forget_after_fork(self) -> None:
        # A forked child has no watchdog thread even if its parent had one.
        self._cond = threading.Condition()
        self._runs, self._thread, self._wake_at = [], None, math.inf


_WATCHDOG = _Watchdog()
os.register_at_fork(after_in_child=_WATCHDOG.forget_after_fork)
