"""`llamadesk quantize` on the real SmolLM2 f16 GGUF, against llama.cpp's own llama-quantize."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from llamadesk.app.core.gguf_file import open_header
from tests.conftest import LLAMADESK, run_cli
from tests.fixtures.smollm2_f16 import smollm2_quantized, smollm2_reference_quantized, tensor_data

pytestmark = pytest.mark.slow

COMMON_TYPES = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K")


@pytest.mark.parametrize("qtype", COMMON_TYPES)
def test_tensor_data_is_byte_identical_to_llama_quantize(smollm2_f16_path, qtype):
    ours = smollm2_quantized(smollm2_f16_path, qtype)
    reference = smollm2_reference_quantized(smollm2_f16_path, qtype)
    assert tensor_data(ours) == tensor_data(reference)
    header = open_header(ours)
    assert header.metadata["general.file_type"] == open_header(reference).metadata["general.file_type"]


# Not Q1_0: SmolLM2's 576-wide rows are not whole 128-weight Q1_0 blocks, and llama.cpp has no
# fallback type for it (llama-quantize refuses it too).
@pytest.mark.parametrize("qtype", ["Q2_0"])
def test_the_newest_types_read_back_and_run(smollm2_f16_path, qtype, tmp_path):
    # Q2_0's tensor type was unknown to the gguf package: every other command called the file damaged.
    quantized = smollm2_quantized(smollm2_f16_path, qtype)
    assert qtype in {t.ggml_type.name for t in open_header(quantized).tensors}
    info = run_cli("info", str(quantized))
    assert info.returncode == 0 and qtype in info.stdout, info.stderr
    answer = run_cli(
        "chat", "-m", str(quantized), "--threads", "1", "--temperature", "0", "--max-tokens", "2", "--ctx", "256", "Hi"
    )
    assert answer.returncode == 0, answer.stderr


def test_sizes_shrink_with_bits(smollm2_f16_path):
    size = {q: smollm2_quantized(smollm2_f16_path, q).stat().st_size for q in COMMON_TYPES}
    k_ladder = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K")
    assert [size[q] for q in k_ladder] == sorted((size[q] for q in k_ladder), reverse=True)
    assert len(set(size[q] for q in k_ladder)) == len(k_ladder)
    # Q4_0 is plain 4.5-bit with no higher-precision tensors, so it is smaller than the Q4_K_M mix.
    # (On SmolLM2 it is even smaller than Q3_K_M: its 576-wide rows are not whole 256-weight
    # k-quant blocks, so those tensors fall back to legacy types at more bits.)
    assert size["Q4_0"] < size["Q4_K_M"]
    assert size["Q8_0"] < smollm2_f16_path.stat().st_size


def test_cli_quantizes_with_default_name_and_refuses_to_overwrite(smollm2_f16_path, tmp_path):
    source = tmp_path / "smol-f16.gguf"
    source.symlink_to(smollm2_f16_path)
    done = run_cli("quantize", str(source), "-t", "q4_0", "--threads", "2", "--json")
    assert done.returncode == 0, done.stderr
    output = tmp_path / "smol-Q4_0.gguf"
    assert output.exists() and str(output) in done.stdout
    assert tensor_data(output) == tensor_data(smollm2_reference_quantized(smollm2_f16_path, "Q4_0"))
    again = run_cli("quantize", str(source), "-t", "Q4_0")
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
    assert run_cli("quantize", str(source), "-t", "Q4_0", "--force", "--threads", "2").returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smol-Q4_0.gguf", "smol-f16.gguf"]


def test_requantizing_is_refused_with_the_reason(smollm2_path, tmp_path):
    out = tmp_path / "re.gguf"
    refused = run_cli("quantize", str(smollm2_path), "-t", "Q4_0", "-o", str(out))
    assert refused.returncode == 2
    assert "already quantized (Q4_1" in refused.stderr and "--allow-requantize" in refused.stderr
    assert "quality" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # the quantizer had started: its partial file is gone too
    # To its own type llama.cpp would quietly copy the file; the refusal must still win.
    same = run_cli("quantize", str(smollm2_path), "-t", "Q4_1", "-o", str(out), "--threads", "2")
    assert same.returncode == 2 and "already quantized" in same.stderr
    assert list(tmp_path.iterdir()) == []
    allowed = run_cli(
        "quantize", str(smollm2_path), "-t", "Q4_0", "-o", str(out), "--allow-requantize", "--threads", "2"
    )
    assert allowed.returncode == 0, allowed.stderr
    assert open_header(out).metadata["general.file_type"] == 2


def test_bad_input_is_one_line_and_leaves_nothing(smollm2_f16_path, tmp_path):
    cases = {
        "unknown type": (["-t", "Q7_K"], "valid types: Q1_0"),
        "needs imatrix": (["-t", "IQ2_XS"], "needs an importance matrix"),
        "bad imatrix": (["-t", "IQ2_XS", "--imatrix", str(smollm2_f16_path)], "importance matrix"),
        "too many threads": (["-t", "Q4_0", "--threads", "100000"], "--threads must be"),
        "no threads": (["-t", "Q4_0", "--threads", "0"], "--threads must be"),
    }
    for what, (args, expected) in cases.items():
        result = run_cli("quantize", str(smollm2_f16_path), *args, "-o", str(tmp_path / "x.gguf"))
        assert result.returncode == 2, what
        assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, (what, result.stderr)
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello")
    result = run_cli("quantize", str(not_gguf), "-t", "Q4_0", "-o", str(tmp_path / "y.gguf"))
    assert result.returncode == 2 and "not a GGUF file" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.gguf"]


@contextlib.contextmanager
def _unwritable_folder(path: Path):
    """A folder this process cannot write to. root may write anywhere, so for root it is a
    read-only tmpfs (root can mount one); for anyone else a folder without write permission."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_unwritable_output_folder(smollm2_path, tmp_path):
    with _unwritable_folder(tmp_path / "locked") as locked:
        result = run_cli(
            "quantize", str(smollm2_path), "-t", "Q4_0", "--allow-requantize", "-o", str(locked / "m.gguf")
        )
        assert result.returncode == 2, result.stderr
        assert "not writable" in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert list(locked.iterdir()) == []


def test_full_disk_reports_one_line_and_removes_the_partial_file(smollm2_f16_path, tmp_path):
    import resource

    limit = 20 * 1024 * 1024  # a Q8_0 SmolLM2 is ~140 MB: the write fails part way

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [
            str(LLAMADESK),
            "quantize",
            str(smollm2_f16_path),
            "-t",
            "Q8_0",
            "--threads",
            "2",
            "-o",
            str(tmp_path / "m.gguf"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=small_disk,
    )
    assert result.returncode == 1, result.stderr
    assert "file-size limit" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_stops_quantizing_and_leaves_nothing(smollm2_f16_path, tmp_path):
    output = tmp_path / "m.gguf"
    # F32 writes ~540 MB, long enough to interrupt in the middle.
    cli = subprocess.Popen(
        [str(LLAMADESK), "quantize", str(smollm2_f16_path), "-t", "F32", "--threads", "1", "-o", str(output)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not any(tmp_path.glob(".m.gguf.*.part")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(tmp_path.glob(".m.gguf.*.part")), "the quantizer never started writing"
    workers = subprocess.run(["pgrep", "-P", str(cli.pid)], capture_output=True, text=True).stdout.split()
    assert workers, "no quantizer child process found"
    os.killpg(cli.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    _, stderr = cli.communicate(timeout=60)
    assert cli.returncode == 130, stderr
    assert "interrupted" in stderr
    assert list(tmp_path.iterdir()) == []
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists(), f"quantizer child {pid} outlived Ctrl-C"


def test_list_types(tmp_path):
    result = run_cli("quantize", "--list-types")
    assert result.returncode == 0
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "imatrix" in rows["IQ2_XXS"] and "imatrix" not in rows["Q4_K_M"]
    assert len(rows) == 38


def _gguf_of_type(path: Path, kind: str, tensors: dict[str, np.ndarray] | None = None) -> Path:
    """A small GGUF whose general.type is `kind` ("adapter", "imatrix"), with `tensors` besides."""
    from gguf import GGUFValueType

    from tests.gguf_samples import TinyModel

    return TinyModel(tensors=tensors or {}).set("general.type", kind, GGUFValueType.STRING).write(path)


def _imatrix_for_another_model(path: Path) -> Path:
    """Entries for SmolLM2's tensor names, of a size no SmolLM2 tensor has."""
    from llamadesk.app.core.imatrix_file import COUNTS_SUFFIX, SUMS_SUFFIX

    entries = {}
    for name in ("blk.0.attn_k.weight", "blk.0.attn_q.weight", "token_embd.weight"):
        entries[name + SUMS_SUFFIX] = np.ones(7, dtype=np.float32)
        entries[name + COUNTS_SUFFIX] = np.ones(1, dtype=np.float32)
    return _gguf_of_type(path, "imatrix", entries)


def test_what_llama_cpp_quantizes_but_cannot_use_is_bad_input(smollm2_f16_path, tmp_path):
    # Each of these reached llama.cpp's quantizer: a model it could not load was quantized into a
    # file no one could load (exit 0); an adapter, an importance matrix given as the model, an
    # importance matrix of another model and a type without fallback failed with exit 1 and
    # llama.cpp's words ("key not found", "unknown model architecture", ...).
    from tests.gguf_samples import tiny_gguf_bytes

    made = tmp_path / "made"
    made.mkdir()
    not_loadable = tmp_path / "incomplete.gguf"
    not_loadable.write_bytes(tiny_gguf_bytes(made, "incomplete.gguf", file_type="F16"))
    cases = {
        # (refused by the checks every load makes, before llama.cpp starts on it)
        "a tensor missing": ([str(not_loadable), "-t", "Q8_0"], "the file is damaged or not a model llamadesk can run"),
        "an adapter": ([str(_gguf_of_type(made / "a.gguf", "adapter")), "-t", "Q8_0"], "is a LoRA adapter"),
        "an imatrix": ([str(_gguf_of_type(made / "i.gguf", "imatrix")), "-t", "Q8_0"], "is an importance matrix"),
        "another model's imatrix": (
            [str(smollm2_f16_path), "-t", "Q4_K_M", "--imatrix", str(_imatrix_for_another_model(made / "m.gguf"))],
            "was made for another model",
        ),
        "no fallback": ([str(smollm2_f16_path), "-t", "Q1_0"], "llama.cpp cannot make Q1_0 for this model"),
    }
    out = tmp_path / "out"
    out.mkdir()
    for what, (args, expected) in cases.items():
        result = run_cli("quantize", *args, "-o", str(out / "x.gguf"))
        assert result.returncode == 2, (what, result.stderr)
        assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, (what, result.stderr)
        assert list(out.iterdir()) == [], what


def test_a_folder_that_takes_no_files_is_not_called_a_full_disk(smollm2_f16_path):
    # /proc passes os.access for root and has no free space: llama.cpp's failure to open the
    # output was reported as "the disk is full", exit 1.
    result = run_cli("quantize", str(smollm2_f16_path), "-t", "Q8_0", "-o", "/proc/llamadesk-test.gguf")
    said = result.stderr
    # not root: refused before quantizing, as a folder that is not writable
    assert result.returncode == 2 and ("no file can be created in /proc" in said or "not writable" in said), said
    assert "disk is full" not in said and len(said.strip().splitlines()) == 1
