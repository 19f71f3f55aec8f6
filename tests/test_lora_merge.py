"""`llamadesk convert BASE --lora ADAPTER[:SCALE]`: the adapter merged into the weights (W + s * B·A in f32)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llamadesk.convert import convert_checkpoint
from llamadesk.convert.lora import plan_adapter, write_adapter
from tests.conftest import run_cli
from tests.fixtures import lora_adapters
from tests.fixtures.lora_reference import logits_with_adapters

IDS = [1, 5, 9, 30, 44, 100, 7, 12, 3, 250, 17, 60]


@pytest.fixture(autouse=True)
def own_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LLAMADESK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def patterns():
    folder = lora_adapters.make_adapter("patterns")
    return folder, lora_adapters.base_folder("tiny_llama2")


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_merged_equals_peft_and_base_plus_adapter(scale, patterns, tmp_path):
    folder, base = patterns
    merged = tmp_path / "merged.gguf"
    result = run_cli("convert", str(base), "--lora", f"{folder}:{scale}", "--outtype", "f32", "-o", str(merged))
    assert result.returncode == 0, result.stderr
    expected = lora_adapters.peft_logits(base, folder, IDS, scale=scale)
    got = logits_with_adapters(merged, [], IDS)
    assert np.abs(got - expected).max() < 1e-3
    base_gguf = convert_checkpoint(base, tmp_path / "base.gguf", "f32")
    adapter = write_adapter(plan_adapter(folder, None, "f32"), tmp_path / "adapter.gguf")
    at_run_time = logits_with_adapters(base_gguf, [(str(adapter), scale)], IDS)
    assert np.abs(got - at_run_time).max() < 1e-3
    assert np.abs(got - logits_with_adapters(base_gguf, [], IDS)).max() > 1.0


def test_merge_then_quantize_and_scale_zero_is_the_base(patterns, tmp_path):
    folder, base = patterns
    zero = tmp_path / "zero.gguf"
    assert run_cli("convert", str(base), "--lora", f"{folder}:0", "--outtype", "f32", "-o", str(zero)).returncode == 0
    plain = convert_checkpoint(base, tmp_path / "base.gguf", "f32")
    assert np.abs(logits_with_adapters(zero, [], IDS) - logits_with_adapters(plain, [], IDS)).max() < 1e-5
    quantized = tmp_path / "q8.gguf"
    result = run_cli("convert", str(base), "--lora", str(folder), "--quantize", "Q8_0", "-o", str(quantized))
    assert result.returncode == 0, result.stderr
    expected = lora_adapters.peft_logits(base, folder, IDS)
    assert np.abs(logits_with_adapters(quantized, [], IDS) - expected).max() < 0.5


def test_merge_into_another_base_is_refused(patterns, tmp_path):
    folder, _ = patterns
    other = lora_adapters.base_folder("tiny_llama")
    result = run_cli("convert", str(other), "--lora", str(folder), "-o", str(tmp_path / "m.gguf"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "m.gguf").exists()


@pytest.mark.slow
def test_smollm2_merged_equals_peft(smollm2_path, tmp_path):
    from tests.fixtures.smollm2_checkpoint import smollm2_hf_checkpoint

    base = smollm2_hf_checkpoint(smollm2_path)
    folder = lora_adapters.make_adapter("smollm2", base)
    merged = tmp_path / "merged.gguf"
    result = run_cli("convert", str(base), "--lora", str(folder), "--outtype", "f32", "-o", str(merged))
    assert result.returncode == 0, result.stderr
    ids = [1, 504, 3458, 282, 4649, 314, 2113, 30, 2, 216, 1326, 17, 1007]
    assert np.abs(logits_with_adapters(merged, [], ids) - lora_adapters.peft_logits(base, folder, ids)).max() < 1e-3
