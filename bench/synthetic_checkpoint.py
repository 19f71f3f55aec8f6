"""A large Llama checkpoint made of plausible random weights, for the benchmarks that need size."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np


def write_synthetic_checkpoint(folder: Path, tokenizer_from: Path, n_layer: int = 20) -> int:
    """A bf16 Llama checkpoint of ~3 GB (hidden 2048, FFN 8192, vocab 49152), in two shards."""
    n_embd, n_ff, n_vocab = 2048, 8192, 49152
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_from / name, folder / name)
    (folder / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "hidden_size": n_embd,
                "intermediate_size": n_ff,
                "num_hidden_layers": n_layer,
                "num_attention_heads": 16,
                "num_key_value_heads": 16,
                "vocab_size": n_vocab,
                "rms_norm_eps": 1e-5,
                "max_position_embeddings": 4096,
                "tie_word_embeddings": False,
            }
        )
    )
    shapes = {
        "model.embed_tokens.weight": (n_vocab, n_embd),
        "lm_head.weight": (n_vocab, n_embd),
        "model.norm.weight": (n_embd,),
    }
    for i in range(n_layer):
        p = f"model.layers.{i}."
        shapes.update({p + f"self_attn.{x}_proj.weight": (n_embd, n_embd) for x in "qkvo"})
        shapes.update(
            {
                p + "mlp.gate_proj.weight": (n_ff, n_embd),
                p + "mlp.up_proj.weight": (n_ff, n_embd),
                p + "mlp.down_proj.weight": (n_embd, n_ff),
                p + "input_layernorm.weight": (n_embd,),
                p + "post_attention_layernorm.weight": (n_embd,),
            }
        )
    rng = np.random.default_rng(0)
    # One block of plausible bf16 weights (upper halves of small normal floats), tiled into every tensor.
    block = (rng.standard_normal(1 << 22, dtype=np.float32) * 0.02).view(np.uint32) >> 16
    block = block.astype(np.uint16).tobytes()
    names = list(shapes)
    shards = [names[: len(names) // 2], names[len(names) // 2 :]]
    weight_map, total = {}, 0
    for index, shard in enumerate(shards):
        file_name = f"model-{index + 1:05d}-of-00002.safetensors"
        header, offset = {}, 0
        for name in shard:
            nbytes = int(np.prod(shapes[name])) * 2
            header[name] = {"dtype": "BF16", "shape": list(shapes[name]), "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
            weight_map[name] = file_name
        encoded = json.dumps(header).encode()
        with open(folder / file_name, "wb") as f:
            f.write(struct.pack("<Q", len(encoded)) + encoded)
            for name in shard:
                remaining = int(np.prod(shapes[name])) * 2
                while remaining:
                    piece = block[: min(remaining, len(block))]
                    f.write(piece)
                    remaining -= len(piece)
        total += offset
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return total


def _longrope(head_dim: int, rotated: float = 1.0) -> dict:
    """Phi's LongRoPE parameters for a head size: one long and one short factor per rotated frequency."""
    n_freq = int(head_dim * rotated) // 2
    return {
        "rope_type": "longrope",
        "rope_theta": 10000.0,
        "partial_rotary_factor": rotated,
        "long_factor": [1.0 + 0.05 * i for i in range(n_freq)],
        "short_factor": [1.0 + 0.01 * i for i in range(n_freq)],
        "original_max_position_embeddings": 4096,
    }


# Real small models' shapes, on the tiny test checkpoints' tokenizers (the vocabulary is padded up).
# Where the real model is several GB, its widths with fewer layers: the embedding and one block
# are what the converter's speed depends on, and the file stays quick to write.
FAMILY_SHAPES: dict[str, dict] = {
    "qwen2": {  # Qwen2.5-0.5B
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
    },
    "qwen3": {  # Qwen3-0.6B
        "hidden_size": 1024,
        "intermediate_size": 3072,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 151936,
    },
    "gemma3": {  # Gemma 3 270M
        "hidden_size": 640,
        "intermediate_size": 2048,
        "num_hidden_layers": 18,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 256,
        "query_pre_attn_scalar": 256,
        "sliding_window": 512,
        "vocab_size": 262144,
    },
    "gemma2": {  # Gemma 2 2B's widths, 2 of its 26 layers
        "hidden_size": 2304,
        "intermediate_size": 9216,
        "num_hidden_layers": 2,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "query_pre_attn_scalar": 256,
        "sliding_window": 4096,
        "vocab_size": 256000,
    },
    "phi3": {  # Phi-3.5-mini's widths, 3 of its 32 layers
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "num_hidden_layers": 3,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 32064,
        "max_position_embeddings": 131072,
        "rope_parameters": _longrope(96),
    },
    "phi4-mini": {  # Phi-4-mini's widths, 2 of its 32 layers
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "num_hidden_layers": 2,
        "num_attention_heads": 24,
        "num_key_value_heads": 8,
        "vocab_size": 200064,
        "max_position_embeddings": 131072,
        "rope_parameters": _longrope(128, 0.75),
    },
}
# What the shapes above stand for, as the bench names them.
FAMILY_SHAPE_NAMES = {
    "qwen2": "Qwen2.5-0.5B",
    "qwen3": "Qwen3-0.6B",
    "gemma3": "Gemma 3 270M",
    "gemma2": "Gemma 2 2B widths, 2 layers",
    "phi3": "Phi-3.5-mini widths, 3 layers",
    "phi4-mini": "Phi-4-mini widths, 2 layers",
}


def write_family_checkpoint(folder: Path, tiny: Path, family: str) -> int:
    """A bf16 checkpoint of `family` at a real small model's shapes, with `tiny`'s tokenizer and config.

    Tensor names and shapes come from transformers' own model class built on the meta device (no
    memory), so every family's layout is its own; the values are tiled plausible bf16 weights.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    for path in tiny.iterdir():
        if path.name.startswith(("tokenizer", "generation_config")):
            shutil.copy(path, folder / path.name)
    config = json.loads((tiny / "config.json").read_text())
    config.update(FAMILY_SHAPES[family])
    config.pop("layer_types", None)  # rebuilt for the new layer count
    (folder / "config.json").write_text(json.dumps(config))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if config.get("tie_word_embeddings"):
        shapes.pop("lm_head.weight", None)
    block = (np.random.default_rng(0).standard_normal(1 << 22, dtype=np.float32) * 0.02).view(np.uint32) >> 16
    block = block.astype(np.uint16).tobytes()
    header, offset = {}, 0
    for name, shape in shapes.items():
        nbytes = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    encoded = json.dumps(header).encode()
    with open(folder / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded)
        for shape in shapes.values():
            remaining = int(np.prod(shape)) * 2
            while remaining:
                piece = block[: min(remaining, len(block))]
                f.write(piece)
                remaining -= len(piece)
    return offset
