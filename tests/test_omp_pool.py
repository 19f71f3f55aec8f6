"""A thread that used the engine lets go of llama.cpp's OpenMP worker threads (engine/omp_pool.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import PINNED_LOAD

# Run in a process of its own: the count of the process's threads is the measure, and a pytest
# worker has threads of earlier tests (decoders, cache writers) that may end at any moment.
CHILD = """
import json, os, sys, threading, time
from llamadesk.app.engine import llama_engine
from llamadesk.app.engine.types import LoadSettings, Sampling, TextPiece

def threads_in_process():
    return len(os.listdir("/proc/self/task"))

settings = LoadSettings(**json.loads(sys.argv[2]))
results = []
with llama_engine.Engine.load(sys.argv[1], settings) as engine:
    def in_a_long_lived_thread(release):
        llama_engine.release_worker_threads = release  # what the engine calls after a reply, for this run
        before = threads_in_process()
        events = engine.stream_completion("The capital of France is", Sampling(temperature=0.0, max_tokens=8))
        assert "".join(e.text for e in events if isinstance(e, TextPiece)).strip()
        deadline = time.monotonic() + 2  # a released worker exits on its own schedule
        while threads_in_process() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        results.append(threads_in_process() - before)

    real = llama_engine.release_worker_threads
    for release in (real, lambda: False):  # with the release, then without it (the check can fail)
        thread = threading.Thread(target=in_a_long_lived_thread, args=(release,))
        thread.start()
        thread.join(timeout=120)
print(json.dumps(results))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc; libgomp is Linux's")
def test_a_reply_on_two_threads_leaves_no_openmp_worker_behind(smollm2_path):
    """llama.cpp runs a 2-thread decode on an OpenMP team: the calling thread and one worker, which
    libgomp keeps for as long as the calling thread lives, and counts; more counted threads than
    CPUs make every barrier of every other thread's decode sleep instead of spin. After a reply the
    worker is gone, so the process has the threads it had before."""
    settings = {**PINNED_LOAD, "n_ctx": 512, "n_threads": 2}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(smollm2_path), json.dumps(settings)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [0, 1]
