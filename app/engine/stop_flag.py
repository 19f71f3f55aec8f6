"""A stop flag that llama.cpp reads between graph nodes without calling into Python.

llama.cpp asks its abort callback after every node of the compute graph: about 500 times per
token for a 135M model. A Python callback takes the GIL for each of those calls, so whenever
another thread holds the GIL (the UI drawing a frame, ~10 ms of pure Python), every node waits
for Python's switch interval and the decode stalls: measured, a thread holding the GIL 5% of the
time slowed generation by ~7% with a Python callback and not measurably with this one
(bench/gil_contention.py).

ctypes can only make C callbacks out of Python functions, so the callback here is a C function
that already exists in every process: the C library's `strlen`. Its argument is a two-byte buffer
[flag, NUL], so it returns 0 while the flag is clear and 1 once it is set, which is exactly
ggml's `bool (*)(void *)` contract on every ABI llama.cpp runs on (one pointer argument, the
result in the first return register). The byte is written by Python and read by llama.cpp's
thread without a lock: a one-byte flag polled every node needs no more than eventual visibility.
"""

from __future__ import annotations

import ctypes
import sys

import llama_cpp


def _c_library_strlen() -> int | None:
    """The address of the C library's strlen, or None where it cannot be found."""
    library = "msvcrt" if sys.platform == "win32" else None  # None: the symbols already in this process
    try:
        function = ctypes.CDLL(library).strlen
    except (OSError, AttributeError):
        return None
    return ctypes.cast(function, ctypes.c_void_p).value


class StopFlag:
    """Set from any thread; seen by Python (`is_set`) and by llama.cpp mid-decode."""

    def __init__(self, in_python: bool = False) -> None:
        """`in_python` forces the slow Python callback (the fallback; bench/gil_contention.py compares them)."""
        self._byte = ctypes.create_string_buffer(2)  # [flag, NUL]
        address = None if in_python else _c_library_strlen()
        if address is not None:
            self._callback = llama_cpp.ggml_abort_callback(address)
        else:  # no C library to borrow from: still correct, only slower while the GIL is busy
            self._callback = llama_cpp.ggml_abort_callback(self._python_check)

    def set(self) -> None:
        self._byte[0] = b"\x01"

    def clear(self) -> None:
        self._byte[0] = b"\x00"

    def is_set(self) -> bool:
        return self._byte[0] != b"\x00"

    def install(self, llama_context: ctypes.c_void_p) -> None:
        """Make llama.cpp abort the decode in progress on `llama_context` once the flag is set."""
        # The callback and the buffer are attributes of self: they must outlive the context.
        llama_cpp.llama_set_abort_callback(llama_context, self._callback, ctypes.cast(self._byte, ctypes.c_void_p))

    def _python_check(self, _data: ctypes.c_void_p) -> bool:
        return self.is_set()
