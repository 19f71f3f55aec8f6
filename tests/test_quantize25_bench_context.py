"""A context that cannot be allocated is named as such, never as a damaged model.

`bench -p 100000000` on a model with a small KV cache passed the engine's KV check; llama.cpp then
failed to create the context and llamadesk said "check that it is a complete model", exit 1.
"""

from __future__ import annotations

import dataclasses

import llama_cpp
import pytest

from llamadesk.app.commands.bench import check_context_fits
from llamadesk.app.core import machine
from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.core.memory_budget import estimate_memory
from llamadesk.app.engine.llama_engine import Engine
from llamadesk.app.engine.types import LoadSettings
from llamadesk.app.library.catalog import inspect_model
from tests.conftest import assert_one_clear_line, run_cli
from tests.gguf_samples import TinyModel


@pytest.mark.parametrize(
    "sizes, named",
    [
        (["-p", "100000000"], "lower -p or -n or -d"),
        (["-d", "100000000"], "lower -p or -n or -d"),
        (["--ctx", "100000000"], "lower --ctx"),
    ],
    ids=["prompt", "depth", "ctx"],
)
def test_bench_refuses_a_context_that_does_not_fit_in_memory(tmp_path, sizes, named):
    model = TinyModel().write(tmp_path / "m.gguf")  # refused before llama.cpp would see it
    done = run_cli("bench", "-m", str(model), "--threads", "1", "-r", "1", "-n", "1", "--batched", "0", *sizes)
    assert_one_clear_line(done, 2, "tokens", "but only", "of memory is free", named)


def test_a_context_that_fits_beside_weights_the_gpu_holds_is_not_refused(smollm2_path, monkeypatch):
    # A CUDA machine with less free RAM than the model takes: its layers go to the GPU and chat
    # runs it, but bench counted the weights as RAM and refused with "lower -p or -n".
    summary = inspect_model(smollm2_path)
    needed = estimate_memory(summary, summary.n_vocab, summary.tensor_bytes, 640)
    free_ram = needed.total - summary.tensor_bytes // 2
    real = machine.machine_facts
    monkeypatch.setattr(
        machine, "machine_facts", lambda *a, **k: dataclasses.replace(real(*a, **k), available_ram=free_ram)
    )
    check_context_fits(smollm2_path, 640, ("-p", "-n", "-d"))


def test_a_context_llama_cpp_cannot_create_is_not_called_a_damaged_model(smollm2_path, monkeypatch):
    def no_context(*_args, **_kwargs):
        raise ValueError("Failed to create llama_context")  # llama-cpp-python's words

    monkeypatch.setattr(llama_cpp, "Llama", no_context)
    with pytest.raises(LlamadeskError) as err:
        Engine.load(smollm2_path, LoadSettings(n_ctx=256, n_threads=1))
    assert "could not create a context of 256 tokens" in str(err.value) and "smaller --ctx" in str(err.value)
    assert "complete model" not in str(err.value)


def test_the_batched_line_alone_comes_without_an_empty_table():
    done = run_cli("bench", "-m", "smollm2", "-p", "0", "-n", "0", "--batched", "2", "--threads", "1", "-r", "1")
    assert done.returncode == 0, done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == ["batched (like llama-batched-bench)"]
