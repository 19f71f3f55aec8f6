"""A PEFT adapter on lm_head of a base whose lm_head is its embedding (tied): llama.cpp has no
output.weight to apply it to. It is this model's adapter, so the refusal must say why, not call it
another model's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fixtures import lora_adapters


def with_lm_head(adapter: Path, base: Path) -> Path:
    """The plain adapter with a LoRA pair on lm_head too (its base ties lm_head to the embeddings)."""
    import json

    import numpy as np
    from safetensors.numpy import load_file, save_file

    config = json.loads((base / "config.json").read_text())
    weights = load_file(adapter / "adapter_model.safetensors")
    rng = np.random.default_rng(1)
    weights["base_model.model.lm_head.lora_A.weight"] = rng.normal(size=(8, config["hidden_size"])).astype(np.float32)
    weights["base_model.model.lm_head.lora_B.weight"] = rng.normal(size=(config["vocab_size"], 8)).astype(np.float32)
    save_file(weights, adapter / "adapter_model.safetensors")
    adapter_config = json.loads((adapter / "adapter_config.json").read_text())
    adapter_config["target_modules"].append("lm_head")
    (adapter / "adapter_config.json").write_text(json.dumps(adapter_config))
    return adapter


@pytest.mark.parametrize("how", ["adapter", "merged"])
def test_an_lm_head_adapter_on_tied_embeddings_is_refused_as_such(tmp_path, how):
    checkpoint, adapter = lora_adapters.copies_to_lose(tmp_path)
    # It was trained for this very model: the message must not say it belongs to another one.
    with_lm_head(adapter, checkpoint)
    output = str(tmp_path / "out.gguf")
    if how == "adapter":
        result = run_cli("convert", str(adapter), "--base", str(checkpoint), "-o", output)
    else:
        result = run_cli("convert", str(checkpoint), "--lora", str(adapter), "-o", output)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"llamadesk: {adapter}: the adapter changes lm_head, which ")
    assert "ties to its embeddings; llama.cpp cannot apply that" in lines[0]
    assert "another model" not in lines[0]
    assert not (tmp_path / "out.gguf").exists()
