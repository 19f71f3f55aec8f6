"""An importance matrix or a LoRA adapter given where a model is expected is named as one, by every command.

info, eval, fit, bench and imatrix said "imatrix.context_length is missing; the file is damaged or
not a model", about a file llamadesk itself wrote; quantize already named it.
"""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGUFWriter

from tests.conftest import assert_one_clear_line, run_cli
from tests.gguf_samples import write_out


def not_a_model(path, arch: str, kind: str, tensors: dict[str, tuple[int, int]], **strings_and_floats):
    """A GGUF of `kind` (general.type) with the given keys and tensors of ones, and a text beside it."""
    writer = GGUFWriter(path, arch=arch)
    writer.add_type(kind)
    for key, value in strings_and_floats.items():
        key = key.replace("__", ".")
        if isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_float32(key, value)
    for name, shape in tensors.items():
        writer.add_tensor(name, np.ones(shape, dtype=np.float32))
    write_out(writer)
    (path.parent / "t.txt").write_text("some text " * 50, encoding="utf-8")
    return path


@pytest.fixture
def imatrix_file(tmp_path):  # as quantize/importance_matrix.py writes one
    tensors = {"blk.0.attn_q.weight.in_sum2": (1, 8), "blk.0.attn_q.weight.counts": (1, 1)}
    return not_a_model(tmp_path / "m.imatrix", "imatrix", "imatrix", tensors)


@pytest.mark.parametrize(
    "command",
    [
        ["info", "{m}"],
        ["eval", "{m}", "--text", "{t}", "--threads", "1"],
        ["fit", "{m}", "--memory", "1GB"],
        ["bench", "-m", "{m}", "--threads", "1", "-r", "1", "-p", "8", "-n", "1", "--batched", "0"],
        ["imatrix", "{m}", "--text", "{t}", "--threads", "1", "-o", "{m}.out"],
    ],
    ids=lambda command: command[0],
)
def test_an_importance_matrix_is_not_called_a_damaged_model(imatrix_file, command):
    args = [a.format(m=imatrix_file, t=imatrix_file.with_name("t.txt")) for a in command]
    assert_one_clear_line(run_cli(*args), 2, "is an importance matrix, not a model", "--imatrix")


@pytest.fixture
def adapter_file(tmp_path):  # as convert writes an adapter
    tensors = {"blk.0.attn_q.weight.lora_a": (4, 8), "blk.0.attn_q.weight.lora_b": (8, 4)}
    return not_a_model(
        tmp_path / "a.gguf", "llama", "adapter", tensors, adapter__type="lora", adapter__lora__alpha=16.0
    )


@pytest.mark.parametrize(
    "command",
    [
        ["eval", "{m}", "--text", "{t}", "--threads", "1"],
        ["eval", "{s}", "--base", "{m}", "--text", "{t}", "--threads", "1", "--ctx", "16"],
        ["fit", "{m}", "--memory", "1GB"],
        ["bench", "-m", "{m}", "--threads", "1", "-r", "1", "-p", "8", "-n", "1", "--batched", "0"],
        ["imatrix", "{m}", "--text", "{t}", "--threads", "1", "-o", "{m}.out"],
    ],
    ids=["eval", "eval-base", "fit", "bench", "imatrix"],
)
def test_a_lora_adapter_is_not_called_a_damaged_model(adapter_file, smollm2_path, command):
    # fit, eval and imatrix said "llama.context_length is missing; the file is damaged".
    args = [a.format(m=adapter_file, t=adapter_file.with_name("t.txt"), s=smollm2_path) for a in command]
    assert_one_clear_line(run_cli(*args), 2, "is a LoRA adapter, not a model")
