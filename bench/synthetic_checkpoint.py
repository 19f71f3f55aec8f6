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
