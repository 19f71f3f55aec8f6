"""Ctrl-C reaches a decode in progress (app/commands/signal_wake.py).

Python handles a signal only between bytecodes of the main thread, so Ctrl-C during a long
prompt step was seen once llama_decode returned: 3.6-7 s late for a 512-token step here, a minute
on a Pi. These tests send SIGINT while the main thread is inside one long C call and check that
the wake came during the call: for the real engine, that llama.cpp returned its "aborted" status.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np

from llamadesk.app.commands.chat import ctrl_c_stops
from llamadesk.app.commands.signal_wake import signals_wake
from llamadesk.app.engine.types import Sampling, TextPiece

ABORTED = 2  # llama_decode's status for a decode its abort callback stopped


def signal_after(seconds: float, signum: int = signal.SIGINT) -> threading.Timer:
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signum))
    timer.start()
    return timer


def test_a_signal_wakes_the_watcher_while_the_main_thread_is_in_a_long_c_call():
    # numpy's sort releases the GIL and never looks at signals: like llama_decode.
    values = np.random.default_rng(0).random(20_000_000)
    woken: list[float] = []
    previous = signal.signal(signal.SIGINT, lambda _s, _f: None)
    try:
        with signals_wake(lambda: woken.append(time.monotonic())):
            timer = signal_after(0.2)
            values.sort()
            returned = time.monotonic()
            timer.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert woken and woken[0] < returned, "woken only after the C call returned (or never)"


def test_the_wakeup_fd_and_handlers_are_given_back():
    before = signal.getsignal(signal.SIGINT)
    with signals_wake(lambda: None):
        pass
    assert signal.set_wakeup_fd(-1) == -1, "no wakeup fd left behind"
    assert signal.getsignal(signal.SIGINT) is before
    assert not any(t.name == "signal-wake" and t.is_alive() for t in threading.enumerate())


def test_off_the_main_thread_nothing_is_watched_and_nothing_breaks():
    done: list[bool] = []

    def in_a_thread():
        with signals_wake(lambda: None):
            done.append(True)

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert done == [True]


def test_ctrl_c_during_a_prompt_step_aborts_the_step(smollm2_engine, monkeypatch):
    """The pinned engine reads prompts 512 tokens a step (seconds at one thread): Ctrl-C 0.3 s into
    the first step makes llama.cpp return "aborted", and the reply ends stopped, with no text."""
    import llama_cpp._internals

    bindings = llama_cpp._internals.llama_cpp  # what Llama.eval's decode calls
    statuses: list[int] = []
    real = bindings.llama_decode
    timers: list[threading.Timer] = []

    def decode(context, batch):
        signalled = batch.n_tokens >= 256 and not timers
        if signalled:
            timers.append(signal_after(0.3))
        status = real(context, batch)
        if signalled:  # (a later step is aborted by the Python handler's stop alone)
            statuses.append(status)
        return status

    monkeypatch.setattr(bindings, "llama_decode", decode)
    question = "Summarize: " + "the quick brown fox jumps over the lazy dog. " * 60
    messages = [{"role": "user", "content": question}]
    with ctrl_c_stops(smollm2_engine) as pressed:
        events = list(smollm2_engine.stream_chat(messages, Sampling(temperature=0, max_tokens=8)))
    timers[0].join()
    assert pressed, "the Python handler ran too"
    assert statuses == [ABORTED], f"the step Ctrl-C came in ran to its end: {statuses}"
    assert not any(isinstance(e, TextPiece) for e in events)
    assert events[-1].stats.stop_reason == "stopped"
    # The engine answers normally afterwards.
    reply = list(smollm2_engine.stream_chat([{"role": "user", "content": "Hi"}], Sampling(temperature=0, max_tokens=4)))
    assert reply[-1].stats.stop_reason in ("length", "end") and any(isinstance(e, TextPiece) for e in reply)


def test_a_stop_during_an_eval_chunk_ends_its_decode(smollm2_path, tmp_path):
    """eval reads a chunk in one llama_decode (4,096 tokens: 33 s to stop here): the scorers'
    stop flag, which Ctrl-C's watcher sets, ends it where it is."""
    from llamadesk.app.core.errors import Interrupted
    from llamadesk.app.engine.stop_flag import StopFlag
    from llamadesk.quantize.evaluation import evaluate

    text = tmp_path / "text.txt"
    text.write_text("The quick brown fox jumps over the lazy dog, and then it rests. " * 290)  # two chunks
    stop = StopFlag()
    timer = threading.Timer(1.0, stop.set)
    timer.start()
    started = time.monotonic()
    try:
        evaluate(smollm2_path, text, 2048, threads=1, stop=stop)
    except Interrupted:
        stopped_after = time.monotonic() - started
    else:
        raise AssertionError("the evaluation ran to its end")
    finally:
        timer.cancel()
    # Not a timing test: the whole of one 2,048-token decode takes several times this on this machine.
    assert stop.is_set() and stopped_after < 30
