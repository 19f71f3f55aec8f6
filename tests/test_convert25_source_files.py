"""`convert -o` naming a file the conversion reads is refused, even with --force: --force replaces
an old output, and a slip of tab-completion must not replace a checkpoint with its own GGUF."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fixtures import lora_adapters


@pytest.fixture
def copies(tmp_path) -> tuple[Path, Path]:
    return lora_adapters.copies_to_lose(tmp_path)


@pytest.fixture
def checkpoint(copies) -> Path:
    return copies[0]


@pytest.fixture
def adapter(copies) -> Path:
    return copies[1]


def assert_refused_and_kept(result, source: Path, before: bytes) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "source's own" in lines[0] and "choose another -o" in lines[0], lines
    assert source.read_bytes() == before


@pytest.mark.parametrize("extra", [(), ("--quantize", "Q4_K_M"), ("--outtype", "q8_0")], ids=["f16", "quantize", "q8"])
@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json", "config.json"])
def test_output_naming_a_checkpoint_file_is_refused_even_with_force(checkpoint, name, extra):
    source = checkpoint / name
    before = source.read_bytes()
    result = run_cli("convert", str(checkpoint), "-o", str(source), "--force", *extra)
    assert_refused_and_kept(result, source, before)


def test_output_linking_to_the_weights_is_refused(checkpoint, tmp_path):
    link = tmp_path / "model.gguf"
    link.symlink_to(checkpoint / "model.safetensors")
    before = link.read_bytes()
    assert_refused_and_kept(run_cli("convert", str(checkpoint), "-o", str(link), "--force"), link, before)


def test_output_naming_the_adapters_weights_is_refused(checkpoint, adapter):
    weights = adapter / "adapter_model.safetensors"
    before = weights.read_bytes()
    result = run_cli("convert", str(adapter), "--base", str(checkpoint), "-o", str(weights), "--force")
    assert_refused_and_kept(result, weights, before)
    base_config = checkpoint / "config.json"
    before = base_config.read_bytes()
    result = run_cli("convert", str(adapter), "--base", str(checkpoint), "-o", str(base_config), "--force")
    assert_refused_and_kept(result, base_config, before)


def test_output_naming_the_base_gguf_of_an_adapter_is_refused(checkpoint, adapter, tmp_path):
    base = tmp_path / "base.gguf"
    assert run_cli("convert", str(checkpoint), "-o", str(base)).returncode == 0
    before = base.read_bytes()
    result = run_cli("convert", str(adapter), "--base", str(base), "-o", str(base), "--force")
    assert_refused_and_kept(result, base, before)


def test_output_naming_a_merged_adapters_file_is_refused(checkpoint, adapter):
    weights = adapter / "adapter_model.safetensors"
    before = weights.read_bytes()
    result = run_cli("convert", str(checkpoint), "--lora", str(adapter), "-o", str(weights), "--force")
    assert_refused_and_kept(result, weights, before)


def test_a_gguf_in_the_checkpoint_folder_is_still_an_output(checkpoint):
    for force in ((), ("--force",)):  # written, then replaced
        result = run_cli("convert", str(checkpoint), "-o", str(checkpoint / "model.gguf"), *force)
        assert result.returncode == 0, result.stderr
