"""Letting go of llama.cpp's OpenMP worker threads once a long-lived thread is done decoding.

llama.cpp's CPU backend runs each graph on an OpenMP team (libgomp on Linux builds). libgomp keeps
a pool of worker threads for every thread that ever started a team, for as long as that thread
lives, and counts them all; once it counts more threads than the machine has CPUs, every wait at a
barrier spins a hundred times instead of 300,000 and then sleeps in the kernel (its "throttled"
spin). ggml waits at a barrier between the operations of a graph, hundreds per token, so decoding
on one thread slowed by a third as soon as another long-lived thread had a pool: with 2 threads on
this project's 2 CPUs, a batched decoder ran 44-47 tokens/s after the main thread had decoded, and
62-68 when that decode ran on a thread that had since ended (bench/omp_pool.py). The app's engine
thread is such a thread: after a chat reply, a translation's batched decoder paid for it.

OpenMP 5.0's omp_pause_resource_all frees the calling thread's pool (libgomp: the team's workers
exit); the thread's next decode makes a new one, which costs microseconds. The engine calls it
after each reply. Builds without libgomp (macOS, Windows, no OpenMP) have nothing to release.
"""

from __future__ import annotations

import ctypes
import os

OMP_PAUSE_SOFT = 1  # omp_pause_resource_t: keep what resuming needs, free the threads


_found: ctypes.CDLL | None = None


def _libgomp() -> ctypes.CDLL | None:
    """The libgomp that llama.cpp loaded into this process, or None (not loaded: nothing to do)."""
    global _found
    no_load = getattr(os, "RTLD_NOLOAD", None)
    if _found is not None or no_load is None:  # no RTLD_NOLOAD: Windows, which has no libgomp
        return _found
    try:
        library = ctypes.CDLL("libgomp.so.1", mode=no_load | os.RTLD_LAZY)
        pause = library.omp_pause_resource_all
    except (OSError, AttributeError):  # not loaded (yet), or older than OpenMP 5.0
        return None
    pause.argtypes = [ctypes.c_int]
    pause.restype = ctypes.c_int
    _found = library
    return library


def release_worker_threads() -> bool:
    """Free the calling thread's OpenMP worker threads (call it between decodes); True if it did."""
    library = _libgomp()
    if library is None:
        return False
    return library.omp_pause_resource_all(OMP_PAUSE_SOFT) == 0
