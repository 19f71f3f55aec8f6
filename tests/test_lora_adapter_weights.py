"""Pairing an adapter's lora_A and lora_B weights, and refusing every file llama.cpp could not apply."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from llamadesk.app.core.errors import BadInputError
from llamadesk.convert.lora import adapter_weights
from llamadesk.convert.lora.adapter_weights import read_adapter_pairs

Q = "base_model.model.model.layers.0.self_attn.q_proj"
V = "base_model.model.model.layers.0.self_attn.v_proj"
NOT_LORA = "not a lora_A/lora_B weight (a saved whole module or a bias?); llama.cpp would not apply it"


def matrix(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32)


def pair(module: str, rank: int = 4, n_in: int = 16, n_out: int = 8) -> dict[str, np.ndarray]:
    return {f"{module}.lora_A.weight": matrix(rank, n_in, 1), f"{module}.lora_B.weight": matrix(n_out, rank, 2)}


def adapter(folder: Path, tensors: dict[str, np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    return folder


def refusal(folder: Path) -> str:
    with pytest.raises(BadInputError) as caught:
        read_adapter_pairs(folder)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_pairs_are_matched_by_module_with_their_rank(tmp_path):
    tensors = pair(Q, rank=4) | pair(V, rank=2, n_out=4)
    pairs = {p.module: p for p in read_adapter_pairs(adapter(tmp_path, tensors))}
    assert set(pairs) == {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"}
    q, v = pairs["model.layers.0.self_attn.q_proj"], pairs["model.layers.0.self_attn.v_proj"]
    assert (q.rank, q.a.shape, q.b.shape) == (4, (4, 16), (8, 4))
    assert (v.rank, v.a.shape, v.b.shape) == (2, (2, 16), (4, 2))
    assert np.array_equal(q.a.read(), tensors[f"{Q}.lora_A.weight"])
    assert np.array_equal(q.b.read(), tensors[f"{Q}.lora_B.weight"])


def test_the_base_layers_copy_is_skipped(tmp_path):
    head = "base_model.model.lm_head"
    tensors = pair(Q) | {f"{head}.base_layer.weight": matrix(8, 16)}
    assert [p.module for p in read_adapter_pairs(adapter(tmp_path, tensors))] == ["model.layers.0.self_attn.q_proj"]
    assert refusal(adapter(tmp_path / "only-copy", {f"{head}.base_layer.weight": matrix(8, 16)})).endswith(
        "adapter_model.safetensors: holds no LoRA weights; the adapter is empty"
    )


def test_an_older_peft_bin_is_read_and_safetensors_is_preferred(tmp_path):
    tensors = pair(Q)
    torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, tmp_path / "adapter_model.bin")
    (pairs,) = read_adapter_pairs(tmp_path)
    assert pairs.rank == 4 and np.array_equal(pairs.b.read(), tensors[f"{Q}.lora_B.weight"])

    (tmp_path / "adapter_model.bin").write_bytes(b"damaged: never read when safetensors is there")
    (pairs,) = read_adapter_pairs(adapter(tmp_path, pair(V, rank=3)))
    assert pairs.module == "model.layers.0.self_attn.v_proj" and pairs.rank == 3


def test_a_folder_without_weights_is_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.safetensors").mkdir()  # a folder of that name is no file
    assert refusal(tmp_path) == (
        f"{tmp_path}: no adapter_model.safetensors or adapter_model.bin; the adapter is incomplete"
    )


@pytest.mark.parametrize(
    "name, why",
    [
        (
            "base_model.model.model.embed_tokens.lora_embedding_A",
            "an embedding adapter (target embed_tokens); llamadesk converts adapters of linear layers",
        ),
        (f"{Q}.lora_magnitude_vector", "a DoRA magnitude; llama.cpp does not apply DoRA"),
        (f"{Q}.bias", NOT_LORA),
        ("model.layers.0.self_attn.q_proj.lora_A.weight", NOT_LORA),  # without PEFT's prefix
    ],
    ids=["embedding", "dora", "bias", "no prefix"],
)
def test_a_tensor_llama_cpp_would_not_apply_is_refused_by_name(tmp_path, name, why):
    folder = adapter(tmp_path, pair(Q) | {name: matrix(4, 16)})
    assert refusal(folder) == f"{folder / 'adapter_model.safetensors'}: tensor {name} is {why}"


@pytest.mark.parametrize("kept, missing", [("lora_A", "lora_B"), ("lora_B", "lora_A")])
def test_a_half_without_its_partner_is_refused(tmp_path, kept, missing):
    tensors = pair(V) | {k: v for k, v in pair(Q).items() if f".{kept}." in k}
    message = refusal(adapter(tmp_path, tensors))
    assert message.endswith(f": model.layers.0.self_attn.q_proj has no {missing} weight; the adapter is incomplete")


@pytest.mark.parametrize(
    "a, b",
    [
        (np.zeros(4, np.float32), matrix(8, 4)),
        (matrix(4, 16), np.zeros((8, 4, 1), np.float32)),
        (np.zeros((0, 16), np.float32), np.zeros((8, 0), np.float32)),
        (matrix(4, 16), np.zeros((0, 4), np.float32)),
    ],
    ids=["A a vector", "B 3-D", "rank 0", "B without rows"],
)
def test_halves_that_are_not_two_matrices_are_refused(tmp_path, a, b):
    message = refusal(adapter(tmp_path, {f"{Q}.lora_A.weight": a, f"{Q}.lora_B.weight": b}))
    expected = (
        f"model.layers.0.self_attn.q_proj's lora_A {list(a.shape)} and lora_B {list(b.shape)} are not two matrices"
    )
    assert message.endswith(expected)


def test_halves_of_different_ranks_are_refused(tmp_path):
    tensors = {f"{Q}.lora_A.weight": matrix(4, 16), f"{Q}.lora_B.weight": matrix(8, 2)}
    assert refusal(adapter(tmp_path, tensors)).endswith(
        ": rank mismatch in model.layers.0.self_attn.q_proj: lora_A has 4 rows but lora_B 2 columns"
    )


def test_more_adapted_modules_than_any_model_has_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(adapter_weights, "MAX_PAIRS", 2)
    tensors = pair(Q) | pair(V) | pair("base_model.model.model.layers.0.self_attn.k_proj")
    assert refusal(adapter(tmp_path, tensors)).endswith(
        "adapter_model.safetensors: 3 adapted modules is more than any model has; the file is damaged"
    )
    assert len(read_adapter_pairs(adapter(tmp_path / "two", pair(Q) | pair(V)))) == 2
