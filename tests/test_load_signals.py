"""Ctrl-C or SIGTERM (SIGHUP alike) while llama.cpp loads a model stops the command.

llama.cpp logs a few hundred lines while it loads a model, each through its log callback. With a
Python function there, the signal's handler ran inside that callback, where ctypes prints the
KeyboardInterrupt as "Exception ignored on calling ctypes callback function" and drops it: `chat`
and `translate` went on to answer and exited 0, a traceback on the terminal.
"""

from __future__ import annotations

import linecache
import os
import signal
import sys
import threading
import time

import pytest

from llamadesk.app.engine.activations import collect_activations
from llamadesk.app.engine.llama_engine import Engine
from llamadesk.app.engine.llama_log import LOG_ENV
from llamadesk.app.engine.scoring import TokenScorer
from llamadesk.app.engine.types import LoadSettings
from tests.conftest import PINNED_LOAD


class Interrupted(BaseException):
    """Raised by the test's handler; not KeyboardInterrupt, which would stop pytest if it got through."""


def in_model_load(thread_id: int) -> bool:
    """Whether that thread is inside llama.cpp's model load: a frame of it is on the line that calls
    llama_model_load_from_file (llama-cpp-python's, or llamadesk's own for imatrix)."""
    frame = sys._current_frames().get(thread_id)
    while frame is not None:
        line = linecache.getline(frame.f_code.co_filename, frame.f_lineno or 0)  # None between lines
        if "llama_model_load_from_file(" in line:
            return True
        frame = frame.f_back
    return False


def signal_once_loading(signum: int) -> threading.Thread:
    """Send `signum` to this process as soon as the main thread is inside the model load."""
    main = threading.main_thread().ident

    def watch() -> None:
        deadline = time.monotonic() + 60
        while not in_model_load(main) and time.monotonic() < deadline:
            time.sleep(0.0005)
        os.kill(os.getpid(), signum)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


@pytest.fixture
def raising_handler():
    def interrupted(_signum, _frame):
        raise Interrupted

    previous = {signum: signal.signal(signum, interrupted) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


LOADERS = {
    "chat and translate": lambda path: Engine.load(path, LoadSettings(**PINNED_LOAD)).close(),
    "eval": lambda path: TokenScorer.load(path, n_ctx=256, n_threads=1).close(),
    "imatrix": lambda path: collect_activations(path, "The capital of France is Paris. " * 40, n_ctx=128),
}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
@pytest.mark.parametrize("load", LOADERS.values(), ids=LOADERS.keys())
def test_a_signal_during_the_load_is_raised_when_llama_cpp_returns(
    smollm2_path, raising_handler, monkeypatch, capfd, signum, load
):
    monkeypatch.delenv(LOG_ENV, raising=False)
    watcher = signal_once_loading(signum)
    with pytest.raises(Interrupted):
        load(smollm2_path)
    watcher.join()
    assert "Exception ignored" not in capfd.readouterr().err
