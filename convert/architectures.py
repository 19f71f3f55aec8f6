"""The model families llamadesk converts, described as data.

Each entry says which GGUF architecture a checkpoint becomes and how its config names the
hyperparameters. Adding a LLaMA variant is a new row here (and a test), not a new code path:
the converter reads these tables and gguf's TensorNameMap, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import gguf

REQUIRED = object()  # marks a config key with no default: its absence is an error


@dataclass(frozen=True)
class Architecture:
    """How one checkpoint family maps onto a GGUF architecture."""

    gguf_arch: gguf.MODEL_ARCH
    # HF checkpoints store Q and K with the rotary halves de-interleaved (transformers permuted
    # Meta's weights when porting them); llama.cpp expects Meta's order, so they are permuted back.
    permute_qk: bool


LLAMA_HF = Architecture(gguf.MODEL_ARCH.LLAMA, permute_qk=True)
LLAMA_META = Architecture(gguf.MODEL_ARCH.LLAMA, permute_qk=False)

# HF `architectures[0]` -> how to convert it. SmolLM, TinyLlama and Llama 1/2/3.x all say
# LlamaForCausalLM; Mistral 7B is the same network under another name.
HF_ARCHITECTURES: dict[str, Architecture] = {
    "LlamaForCausalLM": LLAMA_HF,
    "MistralForCausalLM": LLAMA_HF,
}
META_ARCHITECTURE = "consolidated.*.pth (Meta LLaMA)"

# Hyperparameter -> (config.json key, default). A default of None means "derive it" (see
# model_config.py); REQUIRED means the config is unusable without it.
HF_CONFIG_KEYS: dict[str, tuple[str, object]] = {
    "n_vocab": ("vocab_size", REQUIRED),
    "n_embd": ("hidden_size", REQUIRED),
    "n_layer": ("num_hidden_layers", REQUIRED),
    "n_head": ("num_attention_heads", REQUIRED),
    "n_head_kv": ("num_key_value_heads", None),
    "n_ff": ("intermediate_size", REQUIRED),
    "head_dim": ("head_dim", None),
    "rms_eps": ("rms_norm_eps", 1e-6),
    "context_length": ("max_position_embeddings", 2048),
    "tie_embeddings": ("tie_word_embeddings", False),
}

# Meta's params.json. It does not record the FFN width or (in Llama 1/2) the vocabulary size:
# both are read off the weights.
META_PARAMS_KEYS: dict[str, tuple[str, object]] = {
    "n_vocab": ("vocab_size", None),
    "n_embd": ("dim", REQUIRED),
    "n_layer": ("n_layers", REQUIRED),
    "n_head": ("n_heads", REQUIRED),
    "n_head_kv": ("n_kv_heads", None),
    "rms_eps": ("norm_eps", 1e-5),
    "context_length": ("max_seq_len", 4096),
    "rope_theta": ("rope_theta", 10000.0),
}

# Rotary scaling kinds (`rope_type` in config) and what llama.cpp needs for each.
ROPE_SCALING_TYPES: dict[str, str] = {
    "default": "none",
    "linear": "linear",  # llama.rope.scaling.{type,factor}
    "llama3": "rope_freqs",  # a rope_freqs tensor of per-frequency factors (Llama 3.1/3.2)
}

# Checkpoint tensors that are not weights llama.cpp wants (recomputed from hyperparameters).
SKIPPED_TENSOR_SUFFIXES = ("rotary_emb.inv_freq", "rope.freqs")


def supported_architectures() -> str:
    return ", ".join([*HF_ARCHITECTURES, META_ARCHITECTURE])
