"""What a config.json means where it leaves things out or says what llama.cpp's graph does not do.

- Gemma 2 and 3 configs as Google publishes them have no `tie_word_embeddings`: transformers ties
  them (its config classes default to True), so the converter must too, not refuse them.
- A sliding window the original attends in, where llama.cpp's graph for the architecture attends to
  everything (Mistral 7B v0.1; Qwen2/3 with use_sliding_window), makes the two part past the
  window: the GGUF's context stops there, with a note.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llamadesk.convert.model_config import read_hf_config
from tests.conftest import run_cli
from tests.fixtures.family_checkpoints import family_checkpoint


def _config_copy(family: str, tmp_path: Path, drop: tuple[str, ...] = (), **changes) -> Path:
    folder = tmp_path / family
    folder.mkdir(parents=True)
    config = json.loads((family_checkpoint(family) / "config.json").read_text())
    for key in drop:
        config.pop(key, None)
        config.get("text_config", {}).pop(key, None)
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("family", ["gemma2", "gemma3"])
def test_gemma_without_tie_word_embeddings_ties_as_transformers_does(family, tmp_path):
    assert read_hf_config(_config_copy(family, tmp_path, drop=("tie_word_embeddings",))).tie_embeddings
    untied = read_hf_config(_config_copy(family, tmp_path / "untied", tie_word_embeddings=False))
    assert not untied.tie_embeddings


def test_other_families_without_the_key_do_not_tie(tmp_path):
    assert not read_hf_config(_config_copy("qwen3", tmp_path, drop=("tie_word_embeddings",))).tie_embeddings


def test_mistral_sliding_window_stops_the_context_there(tmp_path):
    mistral = _config_copy(
        "qwen3", tmp_path, architectures=["MistralForCausalLM"], sliding_window=64, max_position_embeddings=256
    )
    config = read_hf_config(mistral)
    assert config.context_length == 256 and config.gguf_context_length == 64
    assert "last 64 tokens" in config.context_note
    unwindowed = read_hf_config(_config_copy("qwen3", tmp_path / "none", architectures=["MistralForCausalLM"]))
    assert unwindowed.gguf_context_length == unwindowed.context_length and unwindowed.context_note is None


@pytest.mark.parametrize(
    ("changes", "capped"),
    [
        ({"use_sliding_window": False, "sliding_window": 64}, False),
        ({"use_sliding_window": True, "sliding_window": 64, "max_window_layers": 0}, True),
        ({"use_sliding_window": True, "sliding_window": 64, "max_window_layers": 2}, False),  # 2 layers: none slide
        ({"use_sliding_window": True, "sliding_window": 64, "layer_types": ["full_attention"] * 2}, False),
        ({"use_sliding_window": True, "sliding_window": 64, "layer_types": ["sliding_attention"] * 2}, True),
        ({"use_sliding_window": True, "sliding_window": 1024, "max_window_layers": 0}, False),  # past the context
    ],
)
def test_qwen2_window_counts_only_where_layers_slide(changes, capped, tmp_path):
    # Without layer_types, transformers makes the layers from max_window_layers on slide.
    config = read_hf_config(_config_copy("qwen2", tmp_path, drop=("layer_types",), **changes))
    assert config.context_length == 256
    assert config.gguf_context_length == (64 if capped else 256)


def test_the_written_gguf_declares_the_window_and_the_cli_says_why(tmp_path):
    folder = Path(shutil.copytree(family_checkpoint("qwen2"), tmp_path / "qwen2"))
    config = json.loads((folder / "config.json").read_text())
    config.update(use_sliding_window=True, sliding_window=64, layer_types=["sliding_attention"] * 2)
    (folder / "config.json").write_text(json.dumps(config))
    out = tmp_path / "windowed.gguf"
    result = run_cli("convert", str(folder), "-o", str(out), "--outtype", "f16")
    assert result.returncode == 0, result.stderr
    assert "note:" in result.stderr and "its context is 64 (not 256)" in result.stderr
    from tests.fixtures.gguf_comparison import gguf_fields

    assert gguf_fields(out)["qwen2.context_length"] == 64
