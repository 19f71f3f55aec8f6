"""`llamadesk imatrix` stops on Ctrl-C, SIGTERM and SIGHUP, and checks what it would write.

The activations are read in a ctypes callback that ggml calls for every graph node, so nearly every
signal lands there as KeyboardInterrupt (or app.cli.Terminated); ctypes printed it as "ignored" and
the run went on to the end, writing the file and exiting 0.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time

import numpy as np
import pytest

from llamadesk.app.engine import activations
from tests.conftest import LLAMADESK, assert_one_clear_line, run_cli
from tests.gguf_copy import copy_gguf
from tests.gguf_samples import TinyModel


class Interrupted(BaseException):
    """Not an Exception, as KeyboardInterrupt (which would stop pytest itself were it let through)."""


def test_an_interruption_in_the_callback_is_kept_and_stops_the_graph(monkeypatch):
    collector = activations._Collector(activations.ActivationStats())

    def interrupted(_pointer):
        raise Interrupted

    monkeypatch.setattr(collector, "_wanted", interrupted)
    assert collector(0, True, None) is False
    assert isinstance(collector.error, Interrupted)
    # Then ggml is asked to compute the next node and is stopped right after it.
    assert collector(0, True, None) is True and collector(0, False, None) is False


def test_a_signal_during_a_decode_is_raised_once_the_decode_stops():
    def hang_up(_signum, _frame):
        raise Interrupted

    previous = signal.signal(signal.SIGHUP, hang_up)
    try:
        received: list[int] = []
        with pytest.raises(Interrupted), activations.deferred_signals(received):
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.05)  # Python runs the handler here: it only records the signal
            assert received == [signal.SIGHUP]
        assert signal.getsignal(signal.SIGHUP) is hang_up and received == []
    finally:
        signal.signal(signal.SIGHUP, previous)


def long_text(path, chars: int = 60_000):
    from pydoc_data.topics import topics  # Python Language Reference, PSF License (permissive)

    path.write_text("\n\n".join(topics.values())[:chars], encoding="utf-8")
    return path


def wait_for(fd: int, needle: bytes, seconds: float) -> bytes:
    seen, deadline = b"", time.monotonic() + seconds
    while needle not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_a_signal_during_the_run_stops_it_and_leaves_no_file(smollm2_f16_path, tmp_path, signum, code):
    text, output = long_text(tmp_path / "text.txt"), tmp_path / "out.imatrix"
    terminal, stderr = pty.openpty()  # progress ("chunk N/M") is shown only on a terminal
    args = [str(LLAMADESK), "imatrix", str(smollm2_f16_path), "--text", str(text), "--ctx", "128"]
    process = subprocess.Popen(
        [*args, "--threads", "1", "-o", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
    )
    os.close(stderr)
    try:
        assert b"chunk 1/" in wait_for(terminal, b"chunk 1/", 120)
        os.killpg(process.pid, signum)  # as a terminal's Ctrl-C: to the whole group
        sent = time.monotonic()
        rest = wait_for(terminal, b"\0", 30)
        assert process.wait(timeout=30) == code
        assert time.monotonic() - sent < 10  # the run has ~100 chunks left; it went on to the end
        assert b"ignored" not in rest and b"Traceback" not in rest
        assert sorted(p.name for p in tmp_path.iterdir()) == ["text.txt"]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(terminal)


@pytest.mark.parametrize("named", ["model", "text", "model-link"])
def test_an_output_that_is_an_input_is_refused_even_with_force(tmp_path, named):
    # The refusal said "pass --force", and --force replaced the model with the matrix.
    model, text = TinyModel().write(tmp_path / "m.gguf"), long_text(tmp_path / "t.txt")
    (tmp_path / "link.gguf").symlink_to(model)
    output = {"model": model, "text": text, "model-link": tmp_path / "link.gguf"}[named]
    before = model.read_bytes(), text.read_bytes()
    done = run_cli("imatrix", str(model), "--text", str(text), "-o", str(output), "--force", "--ctx", "64")
    assert_one_clear_line(done, 2, f"the output {output} is the {named.split('-')[0]}; choose another -o")
    assert (model.read_bytes(), text.read_bytes()) == before


@pytest.mark.slow
def test_activations_that_are_not_numbers_write_no_matrix(smollm2_path, tmp_path):
    # quantize then refused the file with "recompute it", which could not help.
    nan_model = copy_gguf(smollm2_path, tmp_path / "nan.gguf", changed={"blk.0.ffn_norm.weight": lambda d: d * np.nan})
    text, output = long_text(tmp_path / "t.txt", 2000), tmp_path / "out.imatrix"
    done = run_cli("imatrix", str(nan_model), "--text", str(text), "--ctx", "64", "--threads", "1", "-o", str(output))
    assert_one_clear_line(done, 2, "are not numbers", "the model file is damaged")
    assert not output.exists()
