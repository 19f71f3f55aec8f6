"""quantize_gguf and its quantizer child, with a stand-in child that follows the real one's protocol
(tests/quantizer_standin.py), so what the parent makes of every outcome is tested in milliseconds;
test_quantize_files.py runs llama.cpp.
"""

from __future__ import annotations

import os
import signal
from collections import namedtuple

import pytest

import llamadesk.quantize.quantize_model as quantize_model
from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.engine.quantize_request import QuantizeRequest
from llamadesk.quantize.quant_types import find_quant_type
from llamadesk.quantize.quantize_log import MIB, TensorProgress
from llamadesk.quantize.quantize_model import (
    default_output,
    quantize_gguf,
    quantized_sizes,
    run_quantizer,
)
from tests.quantizer_standin import float_gguf, stand_in_child


@pytest.fixture
def child(tmp_path, monkeypatch):
    """The stand-in quantizer child; call it with the script it follows."""
    return stand_in_child(tmp_path, monkeypatch)


def request(name: str = "in.gguf") -> QuantizeRequest:
    return QuantizeRequest(input=name, output=os.devnull, ftype=15)


# -- names and checks before any child --------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("model-f16.gguf", "model-Q4_K_M.gguf"),
        ("model.BF16.gguf", "model-Q4_K_M.gguf"),
        ("model_f32.gguf", "model-Q4_K_M.gguf"),
        ("model.gguf", "model-Q4_K_M.gguf"),
        ("f16.gguf", "f16-Q4_K_M.gguf"),  # only a suffix after a separator names the type
    ],
)
def test_the_default_output_replaces_a_float_type_in_the_name(tmp_path, name, expected):
    assert default_output(tmp_path / name, find_quant_type("Q4_K_M")) == tmp_path / expected


def test_the_input_as_output_is_refused_before_anything_runs(tmp_path):
    source = float_gguf(tmp_path / "m.gguf")
    before = source.read_bytes()
    with pytest.raises(BadInputError, match=r"the output .*m\.gguf is the input; choose another -o"):
        quantize_gguf(source, tmp_path / "." / "m.gguf", "Q8_0", force=True)
    assert source.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf"]


@pytest.mark.parametrize("given", [".", "/", ""])
def test_a_folder_without_a_name_to_derive_the_output_from_is_named_as_a_folder(given):
    # Path('.').with_name(...) raised ValueError: "internal error", exit 1.
    with pytest.raises(BadInputError, match="is a folder, not a GGUF file"):
        quantize_gguf(given, None, "Q4_0")


def test_threads_past_ggmls_table_are_refused(tmp_path):
    with pytest.raises(BadInputError, match="--threads must be .*, not 600"):
        quantize_gguf(float_gguf(tmp_path / "m.gguf"), None, "Q8_0", threads=600)


def test_a_type_that_needs_an_importance_matrix_without_one(tmp_path):
    with pytest.raises(BadInputError, match=r"^IQ2_XXS needs an importance matrix .* pass --imatrix FILE"):
        quantize_gguf(float_gguf(tmp_path / "m.gguf"), None, "IQ2_XXS")


def test_a_missing_importance_matrix_file_is_refused_before_the_child_starts(tmp_path, child):
    child(exit_at_once=9)  # were a child started, it would be this stand-in, not llama.cpp
    missing = tmp_path / "none.imatrix"
    with pytest.raises(BadInputError, match="none.imatrix: no such importance matrix file; compute one"):
        quantize_gguf(float_gguf(tmp_path / "m.gguf"), tmp_path / "out.gguf", "IQ2_XXS", imatrix=missing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf", "stand-in"]


# -- what the child says ----------------------------------------------------------------------


def test_a_finished_run_renames_the_output_into_place_and_reports_progress(tmp_path, child):
    source = float_gguf(tmp_path / "m-f16.gguf")
    child(
        steps=[
            {
                "lines": ["[   1/   2]   token_embd.weight - [64, 8], type = f16", "[   2/   2] output.weight - [...]"],
                "write": "quantized",
                "status": 0,
            }
        ]
    )
    seen: list[TensorProgress] = []
    target = quantize_gguf(source, None, "Q8_0", progress=seen.append)
    assert target == tmp_path / "m-Q8_0.gguf" and target.read_text() == "quantized"
    assert seen == [TensorProgress(1, 2, "token_embd.weight"), TensorProgress(2, 2, "output.weight")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-Q8_0.gguf", "m-f16.gguf", "stand-in"]


@pytest.mark.parametrize(
    "step, message",
    [
        (
            {"lines": ["llama_model_quantize: failed to quantize: unsupported tensor layout"], "status": 1},
            "llama.cpp could not quantize {input}: unsupported tensor layout",
        ),
        (
            {"lines": ["main: odd things happened"], "status": 1},
            "llama.cpp could not quantize {input}: main: odd things happened",
        ),
        ({"status": 1}, "llama.cpp could not quantize {input}: exit status 1"),
        (
            {"lines": ["[ 1/ 2] output.weight", "writing"], "signal": signal.SIGKILL},
            "llama.cpp's quantizer crashed (SIGKILL) on {input}: writing",
        ),
        ({"signal": signal.SIGSEGV}, "llama.cpp's quantizer crashed (SIGSEGV) on {input}: no output"),
        (  # ggml's abort handler prints a backtrace through gdb after the reason
            {
                "lines": [
                    "[ 1/ 2] output.weight",
                    "/src/llama-model.cpp:123: GGML_ASSERT(n_layer > 0) failed",
                    "[New LWP 4321]",
                    "#0  0x00007f in __GI___wait4 ()",
                    "[Inferior 1 (process 4320) detached]",
                ],
                "signal": signal.SIGABRT,
            },
            "llama.cpp's quantizer crashed (SIGABRT) on {input}: "
            "/src/llama-model.cpp:123: GGML_ASSERT(n_layer > 0) failed",
        ),
        ({"signal": 40}, "llama.cpp's quantizer crashed (signal 40) on {input}: no output"),  # a real-time signal
    ],
    ids=["failure-line", "last-line", "nothing-said", "killed", "segfault", "abort-backtrace", "unnamed-signal"],
)
def test_a_failed_run_is_one_line_and_leaves_nothing(tmp_path, child, step, message):
    source = float_gguf(tmp_path / "m.gguf")
    child(steps=[{"write": "half a file", **step}])
    with pytest.raises(LlamadeskError) as err:
        quantize_gguf(source, tmp_path / "out.gguf", "Q8_0")
    assert type(err.value) is LlamadeskError and str(err.value) == message.format(input=source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf", "stand-in"]


def test_a_child_stopped_by_ctrl_c_is_an_interruption_and_leaves_nothing(tmp_path, child):
    # Ctrl-C reaches the child and this process together; the child's pipe may close first.
    source = float_gguf(tmp_path / "m.gguf")
    child(steps=[{"lines": ["[ 1/ 2] output.weight"], "write": "half a file", "signal": signal.SIGINT}])
    with pytest.raises(KeyboardInterrupt):
        quantize_gguf(source, tmp_path / "out.gguf", "Q8_0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf", "stand-in"]


def test_a_model_that_needs_an_importance_matrix_for_the_type_is_bad_input(tmp_path, child):
    child(steps=[{"lines": ["quantizing blk.0.ffn_down.weight requires an importance matrix"], "status": 1}])
    with pytest.raises(
        BadInputError, match="^this type needs an importance matrix for this model; pass --imatrix FILE$"
    ):
        quantize_gguf(float_gguf(tmp_path / "m.gguf"), tmp_path / "out.gguf", "Q2_K")
    assert not (tmp_path / "out.gguf").exists()


def test_a_file_size_limit_explains_a_failed_write(tmp_path, child, monkeypatch):
    monkeypatch.setattr(quantize_model, "_file_size_limit", lambda: 4096)
    child(steps=[{"write": "x" * 100, "status": 1}])
    target = tmp_path / "out.gguf"
    with pytest.raises(LlamadeskError) as err:
        quantize_gguf(float_gguf(tmp_path / "m.gguf"), target, "Q8_0")
    assert str(err.value) == (
        f"writing {target} stopped at the file-size limit for this process (4096 bytes, see `ulimit -f`);"
        " raise the limit or quantize to a smaller type"
    )


def test_a_full_disk_explains_a_failed_write(tmp_path, child, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(quantize_model.shutil, "disk_usage", lambda _path: usage(10**9, 10**9 - 1000, 1000))
    child(steps=[{"write": "x", "status": 1}])
    target = tmp_path / "out.gguf"
    with pytest.raises(LlamadeskError) as err:
        quantize_gguf(float_gguf(tmp_path / "m.gguf"), target, "Q8_0")
    assert str(err.value) == (
        f"the disk is full while writing {target}; free some space (or choose another -o) and try again"
    )


def test_an_already_quantized_input_is_refused_while_the_child_starts(tmp_path, child):
    child(steps=[{"write": "quantized", "status": 0}])
    source = float_gguf(tmp_path / "q8.gguf", quantized=True)
    with pytest.raises(BadInputError) as err:
        quantize_gguf(source, tmp_path / "out.gguf", "Q4_K_M")
    assert str(err.value).startswith(f"{source} is already quantized (Q8_0); quantizing it again rounds")
    assert str(err.value).endswith("Quantize the original instead, or pass --allow-requantize")
    assert not (tmp_path / "out.gguf").exists()
    assert quantize_gguf(source, tmp_path / "out.gguf", "Q4_K_M", allow_requantize=True).read_text() == "quantized"


# -- several requests in one child ------------------------------------------------------------


def test_requests_after_a_crash_get_the_crashs_status(child):
    child(steps=[{"lines": ["first done"], "status": 0}, {"lines": ["second started"], "signal": signal.SIGKILL}])
    results = run_quantizer([request("a"), request("b"), request("c")])
    assert [status for status, _ in results] == [0, -signal.SIGKILL, -signal.SIGKILL]
    assert [report.lines for _, report in results] == [["first done"], ["second started"], []]
    assert results[0][1].seconds == 0.25 and results[1][1].seconds is None


def test_a_child_that_ends_without_answering_fails_every_request(child):
    child(steps=[{"exit": 0}])  # a clean exit without a DONE line is still a failure
    assert [status for status, _ in run_quantizer([request(), request()])] == [1, 1]


def test_a_child_that_dies_before_reading_its_requests(child):
    child(exit_at_once=3)
    # More than a pipe holds: the write finds the child gone rather than a buffer to fill.
    requests = [request("x" * 1000) for _ in range(200)]
    results = run_quantizer(requests)
    assert len(results) == 200 and {status for status, _ in results} == {3}


def test_sizes_of_a_dry_run_leave_out_types_llama_cpp_cannot_make(child):
    child(
        steps=[
            {"lines": ["llama_model_quantize_impl: quant size =    98.87 MiB (6.17 BPW)"], "status": 0},
            {"lines": ["failed to quantize: no"], "status": 1},
            {"lines": ["nothing about sizes"], "status": 0},
        ]
    )
    types = [find_quant_type(name) for name in ("Q4_K_M", "Q2_K", "Q8_0")]
    assert quantized_sizes("m.gguf", types) == {"Q4_K_M": round(98.87 * MIB)}
