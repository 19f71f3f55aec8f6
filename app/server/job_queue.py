"""The requests waiting for the model: a bounded first-in, first-out line that a request can leave.

queue.Queue keeps a job until the worker takes it, so a client that disconnected while waiting
still held its place: with --queue-size 1, one request that queued and left made every other
client get 503 "busy" until the reply in progress ended (and 16 such requests did it by default).
Here a cancelled job leaves the line at once.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class QueueFull(Exception):
    """put_nowait on a line already holding its most."""


class JobQueue(Generic[T]):
    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._ready = threading.Condition()

    def put_nowait(self, item: T, also_waiting: int = 0) -> None:
        """Add `item` at the end, or QueueFull if the line (with `also_waiting` held elsewhere) is full."""
        with self._ready:
            if len(self._items) + also_waiting >= self.maxsize:
                raise QueueFull
            self._items.append(item)
            self._ready.notify()

    def put(self, item: T) -> None:
        """Add `item` whatever the size (the worker's stop signal)."""
        with self._ready:
            self._items.append(item)
            self._ready.notify()

    def get(self) -> T:
        """The first item, waiting for one."""
        with self._ready:
            while not self._items:
                self._ready.wait()
            return self._items.popleft()

    def drain(self) -> list[T]:
        """Every item, taken out of the line."""
        with self._ready:
            items = list(self._items)
            self._items.clear()
            return items

    def remove(self, item: T) -> bool:
        """Take `item` out of the line; whether it was there (the worker may have taken it)."""
        with self._ready:
            try:
                self._items.remove(item)
            except ValueError:
                return False
            return True

    def qsize(self) -> int:
        with self._ready:
            return len(self._items)
