"""`convert --quantize`'s flags: --keep with a type written in one step, and --json's parameters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fixtures import lora_adapters


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    return Path(shutil.copytree(lora_adapters.base_folder("tiny_llama"), tmp_path / "ckpt"))


@pytest.mark.parametrize("qtype", ["Q8_0", "F16"])
def test_keep_with_a_type_written_directly_is_refused(checkpoint, tmp_path, qtype):
    # There is no unquantized intermediate to keep; ignoring --keep left users looking for one.
    out = tmp_path / "out" / "q.gguf"
    out.parent.mkdir()
    result = run_cli("convert", str(checkpoint), "-o", str(out), "--quantize", qtype, "--keep")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"llamadesk: --keep keeps the unquantized file of a two-step conversion, but {qtype} is written "
        "directly, so there is none; leave --keep out"
    ]
    assert list(out.parent.iterdir()) == []


def test_json_reports_the_parameters_with_quantize_too(checkpoint, tmp_path):
    plain = run_cli("convert", str(checkpoint), "-o", str(tmp_path / "f16.gguf"), "--json")
    quantized = run_cli("convert", str(checkpoint), "-o", str(tmp_path / "q.gguf"), "--quantize", "Q4_K_M", "--json")
    assert plain.returncode == 0 and quantized.returncode == 0, quantized.stderr
    parameters = json.loads(plain.stdout)["parameters"]
    assert parameters > 0 and json.loads(quantized.stdout)["parameters"] == parameters
