"""`llamadesk convert BASE --lora ADAPTER[:SCALE]`: the adapter merged into the weights (W + s * B·A in f32)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llamadesk.app.core.errors import BadInputError
from llamadesk.convert import convert_checkpoint
from llamadesk.convert.lora import plan_adapter, write_adapter
from tests.conftest import run_cli
from tests.fixtures import lora_adapters
from tests.fixtures.lora_reference import gguf_tensors, logits_with_adapters

IDS = [1, 5, 9, 30, 44, 100, 7, 12, 3, 250, 17, 60]
# Gemma at f32: llama.cpp's f16 GELU table keeps it ~0.005 from transformers + peft whatever the
# weights, and Gemma 3's logits move by up to 1.9e-3 between two equal computations (measured and
# explained in test_lora_convert.py). So the merged weights are compared with peft's merge directly,
# and the logits with llama.cpp running peft's merge through the same conversion and engine.
# Against transformers + peft: measured up to 0.011 (Gemma 3, scale 0.5); the multimodal Gemma 3's
# base alone is 0.014 from transformers (0.022 with the adapter), its bound test_convert_families.py's.
PEFT_BOUND = {"gemma2": 0.02, "gemma3": 0.02, "gemma3-multimodal": 0.05}
SAME_ENGINE_TOLERANCE = {"gemma3": 5e-3, "gemma3-multimodal": 5e-3}  # the same text model, the same floor


@pytest.fixture(autouse=True)
def own_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LLAMADESK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _adapter(name: str) -> tuple[Path, Path]:
    """(adapter folder, its base checkpoint folder) for one of lora_adapters.ADAPTERS."""
    return lora_adapters.make_adapter(name), lora_adapters.base_folder(lora_adapters.ADAPTERS[name]["base"])


@pytest.fixture(scope="module")
def patterns():
    return _adapter("patterns")


@pytest.mark.parametrize(
    "name, scale",
    [
        ("patterns", 1.0),
        ("patterns", 0.5),
        ("qwen2", 1.0),
        ("qwen3", 0.5),
        ("phi3", 1.0),
        ("phi4-mini", 0.5),
        ("gemma2", 0.5),
        ("gemma3", 1.0),
        ("gemma3-multimodal", 1.0),
    ],
)
def test_merged_equals_peft_and_base_plus_adapter(name, scale, tmp_path):
    folder, base = _adapter(name)
    merged = tmp_path / "merged.gguf"
    result = run_cli("convert", str(base), "--lora", f"{folder}:{scale}", "--outtype", "f32", "-o", str(merged))
    assert result.returncode == 0, result.stderr
    peft_merged = convert_checkpoint(
        lora_adapters.peft_merged_checkpoint(name, scale), tmp_path / "peft-merged.gguf", "f32"
    )
    ours, peft_weights = gguf_tensors(merged), gguf_tensors(peft_merged)
    assert ours.keys() == peft_weights.keys()
    for tensor, (_, shape, values) in peft_weights.items():
        assert ours[tensor][1] == shape, tensor
        np.testing.assert_allclose(ours[tensor][2], values, rtol=0, atol=1e-5, err_msg=tensor)
    expected = lora_adapters.peft_logits(base, folder, IDS, scale=scale)
    got = logits_with_adapters(merged, [], IDS)
    if name in PEFT_BOUND:
        assert np.abs(got - expected).max() < PEFT_BOUND[name]
        expected = logits_with_adapters(peft_merged, [], IDS)
    same_engine = SAME_ENGINE_TOLERANCE.get(name, 1e-3)
    assert np.abs(got - expected).max() < same_engine
    base_gguf = convert_checkpoint(base, tmp_path / "base.gguf", "f32")
    adapter = write_adapter(plan_adapter(folder, None, "f32"), tmp_path / "adapter.gguf")
    at_run_time = logits_with_adapters(base_gguf, [(str(adapter), scale)], IDS)
    assert np.abs(got - at_run_time).max() < same_engine
    assert np.abs(got - logits_with_adapters(base_gguf, [], IDS)).max() > 1.0


def test_merge_then_quantize_and_scale_zero_is_the_base(patterns, tmp_path):
    folder, base = patterns
    zero = tmp_path / "zero.gguf"
    assert run_cli("convert", str(base), "--lora", f"{folder}:0", "--outtype", "f32", "-o", str(zero)).returncode == 0
    plain = convert_checkpoint(base, tmp_path / "base.gguf", "f32")
    assert np.abs(logits_with_adapters(zero, [], IDS) - logits_with_adapters(plain, [], IDS)).max() < 1e-5
    quantized = tmp_path / "q8.gguf"
    # --verify checks the merged model (it once compared it with the base alone, and always failed)
    result = run_cli(
        "convert", str(base), "--lora", str(folder), "--quantize", "Q8_0", "--verify", "-o", str(quantized), "--json"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["verified"]
    expected = lora_adapters.peft_logits(base, folder, IDS)
    assert np.abs(logits_with_adapters(quantized, [], IDS) - expected).max() < 0.5


def test_merge_into_another_base_is_refused(patterns, tmp_path):
    folder, _ = patterns
    other = lora_adapters.base_folder("tiny_llama")
    result = run_cli("convert", str(other), "--lora", str(folder), "-o", str(tmp_path / "m.gguf"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "m.gguf").exists()


def test_merge_of_another_familys_adapter_is_refused(tmp_path):
    """Qwen3 and Gemma 3's tiny checkpoints have the same widths: the adapter's recorded base tells them apart."""
    folder, _ = _adapter("qwen3")
    _, gemma3 = _adapter("gemma3")
    result = run_cli("convert", str(gemma3), "--lora", str(folder), "-o", str(tmp_path / "m.gguf"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "trained on a qwen3 model" in result.stderr and "gemma3" in result.stderr
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


def test_a_merged_model_is_named_and_recorded_apart_from_its_base(patterns, own_home):
    """Into the library (no -o), a merge took the plain base's file name (a --force replaced the
    base with the fine-tune), and through --quantize its record lost the adapters."""
    folder, base = patterns
    plain = run_cli("convert", str(base), "--quantize", "Q4_K_M", "--threads", "1", "--json")
    assert plain.returncode == 0, plain.stderr
    plain_path = Path(json.loads(plain.stdout)["path"])
    merged = run_cli(
        "convert", str(base), "--lora", f"{folder}:0.8", "--quantize", "Q4_K_M", "--threads", "1", "--keep", "--json"
    )
    assert merged.returncode == 0, merged.stderr
    merged_path = Path(json.loads(merged.stdout)["path"])
    stem = plain_path.name.removesuffix("-Q4_K_M.gguf")
    assert merged_path == plain_path.with_name(f"{stem}+{folder.name}-Q4_K_M.gguf") and plain_path.is_file()
    origins = {Path(e["path"]).name: e["origin"] for e in json.loads(run_cli("models", "--json").stdout)}
    kept = [name for name in origins if name.startswith(f"{stem}+{folder.name}-") and name != merged_path.name]
    assert len(kept) == 1  # the --keep intermediate, named as the merge too
    for name in (merged_path.name, kept[0]):
        assert origins[name]["merged"] == [f"{folder}:0.8"], origins[name]
    assert "merged" not in origins[plain_path.name]
    # Without --quantize the default name is the merge's as well.
    planned = run_cli("convert", str(base), "--lora", str(folder), "--dry-run", "--json")
    assert Path(json.loads(planned.stdout)["output"]).name.startswith(f"{stem}+{folder.name}-")


def test_an_empty_lora_is_refused_not_taken_for_the_current_folder():
    from llamadesk.convert.lora.merge import parse_adapter_choice

    for text in ("", " "):
        with pytest.raises(BadInputError, match="--lora is empty"):
            parse_adapter_choice(text)


@pytest.mark.parametrize("scale", ["nan", "inf", "-1e308", "1001"])
def test_a_scale_out_of_range_names_the_adapter_and_the_scale(scale, tmp_path):
    # The line began with a stray quote and an elided path, and did not say which part was wrong.
    from llamadesk.convert.lora.merge import parse_adapter_choice

    folder = tmp_path / "a very long folder name for an adapter that a person trained last week"
    with pytest.raises(BadInputError) as err:
        parse_adapter_choice(f"{folder}:{scale}")
    assert str(err.value) == f'--lora {folder}: the adapter scale "{scale}" must be a number from -1000 to 1000'
