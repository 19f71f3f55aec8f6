"""Checkpoint to quantized GGUF in one command, and the result in the library and in chat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamadesk.app.core.gguf_file import inspect_gguf
from tests.conftest import PINNED_FLAGS, PINNED_SAMPLING_FLAGS, run_cli
from tests.fixtures.smollm2_checkpoint import smollm2_hf_checkpoint

LIBRARY_FIELDS = {
    "name",
    "path",
    "architecture",
    "parameters",
    "quantization",
    "file_size",
    "context_length",
    "has_chat_template",
    "origin",
    "eval_results",
    "fits",
}


@pytest.fixture(scope="module")
def hf_folder(smollm2_path):
    return smollm2_hf_checkpoint(smollm2_path)


def test_convert_with_quantize_leaves_only_the_quantized_file(hf_folder, tmp_path):
    out = tmp_path / "smol-q4km.gguf"
    result = run_cli("convert", str(hf_folder), "-o", str(out), "--quantize", "Q4_K_M", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outtype"] == "Q4_K_M"
    assert inspect_gguf(out).quantization == "Q4_K_M"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no intermediate f16 left behind


def test_keep_leaves_the_intermediate_and_existing_output_needs_force(hf_folder, tmp_path):
    out = tmp_path / "smol-q4_0.gguf"
    assert run_cli("convert", str(hf_folder), "-o", str(out), "--quantize", "Q4_0", "--keep").returncode == 0
    kept = [p for p in tmp_path.iterdir() if p != out]
    assert len(kept) == 1 and inspect_gguf(kept[0]).quantization in ("F16", "BF16", "ALL_F32")
    again = run_cli("convert", str(hf_folder), "-o", str(out), "--quantize", "Q4_0")
    assert again.returncode == 2 and "--force" in again.stderr
    # -o naming the file --keep writes the unquantized model to: refused before converting (it
    # once wrote the F16 file there, exit 2, and left it under the name asked for)
    clash = tmp_path / "clash"
    clash.mkdir()
    same = run_cli("convert", str(hf_folder), "-o", str(clash / kept[0].name), "--quantize", "Q4_0", "--keep")
    assert same.returncode == 2 and "choose another -o" in same.stderr, same.stderr
    assert list(clash.iterdir()) == []


def test_unknown_quantize_type_lists_the_valid_ones(hf_folder, tmp_path):
    result = run_cli("convert", str(hf_folder), "-o", str(tmp_path / "x.gguf"), "--quantize", "Q5_Z")
    assert result.returncode == 2 and "Q4_K_M" in result.stderr and "Traceback" not in result.stderr
    assert "'auto'" not in result.stderr, "convert does not take auto: the list must not offer it"
    assert not list(tmp_path.iterdir())


def test_dry_run_with_quantize_says_what_both_steps_would_write(hf_folder, tmp_path):
    # --dry-run once ignored --quantize and showed only an F16 file.
    out = tmp_path / "smol-q4_k_m.gguf"
    result = run_cli("convert", str(hf_folder), "-o", str(out), "--quantize", "Q4_K_M", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["quantize"] == {"type": "Q4_K_M", "output": str(out)}
    assert plan["outtype"] in ("F16", "BF16", "F32") and Path(plan["output"]).parent == tmp_path
    direct = run_cli("convert", str(hf_folder), "-o", str(out), "--quantize", "Q8_0", "--dry-run", "--json")
    assert json.loads(direct.stdout)["outtype"] == "Q8_0" and "quantize" not in json.loads(direct.stdout)
    text = run_cli("convert", str(hf_folder), "-o", str(out), "--quantize", "Q4_K_M", "--dry-run")
    assert f"then quantize it to Q4_K_M: {out}" in text.stdout
    assert not list(tmp_path.iterdir())


def test_converted_and_quantized_model_is_in_the_library_and_chats(hf_folder, llamadesk_home):
    made = run_cli("convert", str(hf_folder), "--quantize", "Q8_0", "--force", "--json")
    assert made.returncode == 0, made.stderr
    path = json.loads(made.stdout)["path"]
    entries = {e["path"]: e for e in json.loads(run_cli("models", "--json").stdout)}
    entry = entries[path]
    assert LIBRARY_FIELDS <= entry.keys()
    assert entry["quantization"] == "Q8_0" and entry["architecture"] == "llama"
    assert entry["has_chat_template"] is True and entry["context_length"] == 8192
    assert entry["origin"]["checkpoint"] == str(hf_folder) and entry["fits"] is True
    answer = run_cli(
        "chat", "-m", entry["name"], *PINNED_FLAGS, *PINNED_SAMPLING_FLAGS, "What is the capital of France?"
    )
    assert answer.returncode == 0, answer.stderr
    assert "Paris" in answer.stdout
    # The session's library is shared with other tests (the UI's snapshots list it): leave it as found.
    removed = run_cli("models", "rm", entry["name"], "--yes")
    assert removed.returncode == 0, removed.stderr
    assert not Path(path).exists()
