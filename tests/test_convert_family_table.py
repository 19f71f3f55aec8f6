"""The family table and its named transforms, each on its own (no checkpoint, no llama.cpp)."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch

from llamadesk.convert.architectures import HF_ARCHITECTURES, LLAMA_HF, LLAMA_META, QWEN2, QWEN3, gguf_tensor_name
from llamadesk.convert.model_config import ModelConfig
from llamadesk.convert.plan import tensor_kind
from llamadesk.convert.tensor_transforms import ARITHMETIC, TRANSFORMS, fold_norm_offset, unpermute_query_rotary

T = gguf.MODEL_TENSOR


def _config(**overrides) -> ModelConfig:
    values = dict(
        architecture_name="LlamaForCausalLM",
        architecture=LLAMA_HF,
        n_vocab=10,
        n_embd=8,
        n_layer=1,
        n_head=2,
        n_head_kv=1,
        head_dim=4,
        n_ff=16,
        rms_eps=1e-5,
        context_length=64,
        rope_theta=10000.0,
    )
    return ModelConfig(**{**values, **overrides})


def test_unpermute_inverts_transformers_rotary_permutation():
    """transformers' convert_llama_weights_to_hf permutes Meta's Q rows; the transform undoes exactly that."""
    n_head, dim = 2, 8
    meta = torch.arange(n_head * 4 * dim, dtype=torch.float32).reshape(n_head * 4, dim)
    hf = meta.view(n_head, 4 // 2, 2, dim).transpose(1, 2).reshape(n_head * 4, dim)
    assert np.array_equal(unpermute_query_rotary(hf.numpy(), _config(n_embd=dim, head_dim=4)), meta.numpy())


def test_fold_norm_offset_adds_one_in_float32():
    stored = np.array([-1.0, 0.0, 0.25], dtype=np.float32)  # Gemma's (w - 1)
    assert np.array_equal(fold_norm_offset(stored, _config()), np.array([0.0, 1.0, 1.25], dtype=np.float32))
    assert "fold_norm_offset" in ARITHMETIC  # so the plan widens bf16 before adding


def test_every_transform_a_family_names_exists():
    for name, family in HF_ARCHITECTURES.items():
        for kind, transform in family.transforms.items():
            assert transform in TRANSFORMS, (name, kind)
            assert kind in family.required, (name, kind)
        assert family.biases <= set(family.required), name


def test_llama_permutes_and_the_others_do_not():
    assert LLAMA_HF.permute_qk and not LLAMA_META.permute_qk
    assert not QWEN2.permute_qk and not QWEN3.permute_qk  # llama.cpp rotates their halves, as HF does
    assert LLAMA_META.rotary_pairs == "interleaved" and QWEN2.rotary_pairs == "halves"


@pytest.mark.parametrize(
    "architecture, hf_name, expected",
    [
        ("LlamaForCausalLM", "model.layers.1.self_attn.q_proj.weight", "blk.1.attn_q.weight"),
        ("LlamaForCausalLM", "lm_head.weight", "output.weight"),
        ("MistralForCausalLM", "model.embed_tokens.weight", "token_embd.weight"),
        ("Qwen2ForCausalLM", "model.layers.0.self_attn.k_proj.bias", "blk.0.attn_k.bias"),
        ("Qwen2ForCausalLM", "model.layers.0.mlp.down_proj.weight", "blk.0.ffn_down.weight"),
        ("Qwen3ForCausalLM", "model.layers.2.self_attn.q_norm.weight", "blk.2.attn_q_norm.weight"),
        ("Qwen3ForCausalLM", "model.layers.2.self_attn.o_proj", "blk.2.attn_output"),  # a LoRA target module
        ("Gemma3ForCausalLM", "model.layers.1.pre_feedforward_layernorm.weight", "blk.1.ffn_norm.weight"),
        ("Gemma3ForCausalLM", "model.layers.1.post_feedforward_layernorm.weight", "blk.1.post_ffw_norm.weight"),
        ("Phi3ForCausalLM", "model.layers.1.self_attn.qkv_proj", "blk.1.attn_qkv"),  # fused, a LoRA target
        ("Phi3ForCausalLM", "model.layers.1.mlp.gate_up_proj", "blk.1.ffn_up"),
        # The multimodal Gemma 3's text model as released, and as transformers' modules (PEFT) name it
        (
            "Gemma3ForConditionalGeneration",
            "language_model.model.layers.0.mlp.down_proj.weight",
            "blk.0.ffn_down.weight",
        ),
        ("Gemma3ForConditionalGeneration", "model.language_model.layers.0.mlp.down_proj", "blk.0.ffn_down"),
        ("Gemma3ForConditionalGeneration", "model.vision_tower.encoder.layers.0.self_attn.q_proj", None),
        ("Gemma3ForConditionalGeneration", "vision_tower.encoder.layers.0.self_attn.q_proj.weight", None),
        ("Qwen2ForCausalLM", "model.layers.0.self_attn.q_norm.weight", None),  # Qwen2 has no Q norm
        ("Qwen2ForCausalLM", "model.layers.9.self_attn.q_proj.weight", None),  # past the last block
        ("GPT2LMHeadModel", "transformer.h.0.attn.c_attn.weight", None),  # not a family llamadesk converts
    ],
)
def test_gguf_tensor_name(architecture, hf_name, expected):
    assert gguf_tensor_name(architecture, 3, hf_name) == expected


def test_gemma3_folds_every_norm_and_slides_five_layers_in_six():
    from llamadesk.convert.architectures import GEMMA3

    norms = {kind for kind in GEMMA3.required if gguf.TENSOR_NAMES[kind].endswith("norm")}
    assert norms == {kind for kind, name in GEMMA3.transforms.items() if name == "fold_norm_offset"}
    config = _config(architecture_name="Gemma3ForCausalLM", architecture=GEMMA3, n_layer=12)
    assert [config.is_sliding(i) for i in range(12)] == [True] * 5 + [False] + [True] * 5 + [False]
    assert not _config().is_sliding(0)


def test_tensor_kind_reads_weights_and_biases():
    assert tensor_kind("blk.3.attn_q.bias", gguf.MODEL_ARCH.QWEN2) == T.ATTN_Q
    assert tensor_kind("blk.0.attn_k_norm.weight", gguf.MODEL_ARCH.QWEN3) == T.ATTN_K_NORM
    assert tensor_kind("output_norm.weight", gguf.MODEL_ARCH.LLAMA) == T.OUTPUT_NORM


def test_longrope_uses_the_long_factors_past_the_original_context():
    """As transformers does: short factors up to original_max_position_embeddings, long ones past it."""
    from llamadesk.convert.reference_forward import rotary_angles

    scaling = {
        "rope_type": "longrope",
        "original_max_position_embeddings": 4.0,
        "long_factor": [2.0, 4.0],
        "short_factor": [1.0, 3.0],
    }
    config = _config(rope_scaling=scaling)
    plain = rotary_angles(_config(), 8)
    assert np.allclose(rotary_angles(config, 4), plain[:4] / [1.0, 3.0])
    assert np.allclose(rotary_angles(config, 8), plain / [2.0, 4.0])
