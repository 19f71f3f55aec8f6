"""A thread that used the engine lets go of llama.cpp's OpenMP worker threads (engine/omp_pool.py)."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from llamadesk.app.engine.types import LoadSettings, Sampling, TextPiece
from tests.conftest import PINNED_LOAD


def _threads_in_process() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc; libgomp is Linux's")
def test_a_reply_on_two_threads_leaves_no_openmp_worker_behind(smollm2_path):
    """llama.cpp runs a 2-thread decode on an OpenMP team: the calling thread and one worker, which
    libgomp keeps for as long as the calling thread lives, and counts; more counted threads than
    CPUs make every barrier of every other thread's decode sleep instead of spin. After a reply the
    worker is gone, so the process has the threads it had before."""
    from llamadesk.app.engine import llama_engine
    from llamadesk.app.engine.llama_engine import Engine

    settings = LoadSettings(n_ctx=512, **{**PINNED_LOAD, "n_threads": 2})
    with Engine.load(smollm2_path, settings) as engine:
        sampling = Sampling(temperature=0.0, max_tokens=8)

        def reply() -> str:
            events = engine.stream_completion("The capital of France is", sampling)
            return "".join(e.text for e in events if isinstance(e, TextPiece))

        results: list[int] = []

        def in_a_long_lived_thread(release) -> None:
            llama_engine.release_worker_threads = release  # what the engine calls after a reply, for this run
            before = _threads_in_process()
            assert reply().strip()
            deadline = time.monotonic() + 2  # a released worker exits on its own schedule
            while _threads_in_process() > before and time.monotonic() < deadline:
                time.sleep(0.05)
            results.append(_threads_in_process() - before)

        real = llama_engine.release_worker_threads
        try:
            for release in (real, lambda: False):  # with the release, then without it (the check can fail)
                thread = threading.Thread(target=in_a_long_lived_thread, args=(release,))
                thread.start()
                thread.join(timeout=120)
        finally:
            llama_engine.release_worker_threads = real
    assert results == [0, 1], results
