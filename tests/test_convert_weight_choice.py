"""Which weight files convert reads when a folder holds more than one layout: transformers' choice.

transformers' from_pretrained, the reference a conversion is checked against, loads
model.safetensors when it exists and never opens model.safetensors.index.json beside it (the
same for pytorch_model.bin and its index). A folder with both happens for real: save_pretrained
of a sharded model into a folder with a single file keeps that file, and an unsharded save over
shards keeps their index. The single file and the shards below hold different weights, written
by real torch/transformers, so a conversion that reads the other one shows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.fixtures.gguf_comparison import gguf_tensors
from tests.fixtures.random_checkpoints import build

# Each test converts into a library of its own (conftest.own_home), not the session's.
pytestmark = pytest.mark.usefixtures("own_home")


def _retrained(folder: Path):
    """The model in `folder` with every weight changed, as a fine-tune saved over it would have them."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(-0.5)
    return model


def _state_dict(folder: Path) -> dict:
    """The weights transformers loads from `folder`, as numpy arrays."""
    from transformers import AutoModelForCausalLM

    return {k: v.numpy() for k, v in AutoModelForCausalLM.from_pretrained(folder).state_dict().items()}


def _only(folder: Path, keep: tuple[str, ...], target: Path) -> Path:
    """A copy of `folder` without the weight files that are not in `keep` (globs)."""
    shutil.copytree(folder, target)
    for weights in [*target.glob("*.safetensors*"), *target.glob("pytorch_model*")]:
        if not any(weights.match(pattern) for pattern in keep):
            weights.unlink()
    return target


def _convert(folder: Path, output: Path):
    result = run_cli("convert", str(folder), "-o", str(output), "--outtype", "f32")
    assert result.returncode == 0, result.stderr
    return result


def _assert_converts_the_single_file(mixed: Path, single: str, shards: tuple[str, ...], tmp_path: Path) -> None:
    """`mixed` converts to exactly what its single file alone converts to, says which file it read
    and which it ignored, and transformers loads that same single file."""
    index = f"{single}.index.json"
    result = _convert(mixed, tmp_path / "mixed.gguf")
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and f"converting {single}" in notes[0] and "ignoring the index" in notes[0], result.stderr
    assert index in notes[0]
    from_single = _convert(_only(mixed, (single,), tmp_path / "single"), tmp_path / "single.gguf")
    from_shards = _convert(_only(mixed, (index, *shards), tmp_path / "shards"), tmp_path / "shards.gguf")
    assert "note:" not in from_single.stderr and "note:" not in from_shards.stderr

    got = gguf_tensors(tmp_path / "mixed.gguf")
    assert got == gguf_tensors(tmp_path / "single.gguf")
    embeddings = _state_dict(mixed)["model.embed_tokens.weight"]  # what the reference loads
    assert np.array_equal(embeddings, _state_dict(tmp_path / "single")["model.embed_tokens.weight"])
    assert not np.array_equal(embeddings, _state_dict(tmp_path / "shards")["model.embed_tokens.weight"])
    stored = np.frombuffer(got["token_embd.weight"][2], dtype=np.float32).reshape(embeddings.shape)
    assert np.array_equal(stored, embeddings)


@pytest.mark.slow
def test_safetensors_beside_a_shard_index_converts_the_single_file_and_says_so(llama2, tmp_path):
    _retrained(llama2).save_pretrained(llama2, max_shard_size="60KB")  # keeps model.safetensors
    shards = sorted(p.name for p in llama2.glob("model-*-of-*.safetensors"))
    assert len(shards) > 1 and (llama2 / "model.safetensors").is_file()
    _assert_converts_the_single_file(llama2, "model.safetensors", ("model-*-of-*.safetensors",), tmp_path)


@pytest.mark.slow
def test_pytorch_model_bin_beside_a_shard_index_converts_the_single_file_and_says_so(llama2, tmp_path):
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(str(llama2 / "model.safetensors")), llama2 / "pytorch_model.bin")
    retrained = _retrained(llama2).state_dict()
    (llama2 / "model.safetensors").unlink()
    # Two shards and their index, as transformers 4.x's save_pretrained(safe_serialization=False) wrote them.
    names = list(retrained)
    weight_map = {}
    for number, part in enumerate((names[: len(names) // 2], names[len(names) // 2 :]), start=1):
        shard = f"pytorch_model-{number:05d}-of-00002.bin"
        torch.save({name: retrained[name].clone() for name in part}, llama2 / shard)
        weight_map.update(dict.fromkeys(part, shard))
    total = sum(t.numel() * t.element_size() for t in retrained.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (llama2 / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    _assert_converts_the_single_file(llama2, "pytorch_model.bin", ("pytorch_model-*-of-*.bin",), tmp_path)


@pytest.mark.slow
def test_an_unsharded_save_over_shards_leaves_an_index_that_is_ignored(checkpoints_root, tmp_path):
    # save_pretrained removes the old shards but not their index: it names files that are gone.
    folder = Path(shutil.copytree(build("llama2_sharded", checkpoints_root), tmp_path / "resaved"))
    _retrained(folder).save_pretrained(folder)
    assert (folder / "model.safetensors.index.json").is_file() and not list(folder.glob("model-*.safetensors"))
    result = _convert(folder, tmp_path / "resaved.gguf")  # was: "model-00001-of-... is missing", exit 2
    assert "ignoring the index" in result.stderr
    embeddings = _state_dict(folder)["model.embed_tokens.weight"]
    stored = gguf_tensors(tmp_path / "resaved.gguf")["token_embd.weight"][2]
    assert np.array_equal(np.frombuffer(stored, dtype=np.float32).reshape(embeddings.shape), embeddings)


def test_a_shard_index_alone_is_read_without_a_note(checkpoints_root):
    from llamadesk.convert.checkpoint import open_checkpoint

    checkpoint = open_checkpoint(build("llama2_sharded", checkpoints_root))
    assert len(checkpoint.weight_files) > 1 and checkpoint.notes == []


def test_a_hub_repo_with_the_single_file_and_shards_downloads_the_single_file_only():
    from llamadesk.convert.source_location import files_to_download

    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"]
    repo = ["config.json", "model.safetensors", *shards, "tokenizer.json"]
    assert files_to_download(repo) == ["config.json", "tokenizer.json", "model.safetensors"]
    assert files_to_download(["config.json", *shards]) == ["config.json", *shards]
    bins = ["pytorch_model.bin", "pytorch_model-00001-of-00001.bin", "pytorch_model.bin.index.json"]
    assert files_to_download(["config.json", *bins]) == ["config.json", "pytorch_model.bin"]
