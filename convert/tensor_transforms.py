"""The named changes a checkpoint tensor may need on its way into a GGUF, one small function each.

A family (architectures.py) lists which GGUF tensor kinds get which transform by name; the plan
looks the name up here. Each transform takes the tensor as the checkpoint stores it (float32, or
raw bf16 bits for the ones that only move rows) and the model's hyperparameters, and returns what
llama.cpp expects in the same shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from llamadesk.convert.rotary import unpermute_rotary_halves

if TYPE_CHECKING:
    from llamadesk.convert.model_config import ModelConfig

Transform = Callable[[np.ndarray, "ModelConfig"], np.ndarray]


def unpermute_query_rotary(weight: np.ndarray, config: ModelConfig) -> np.ndarray:
    """HF LLaMA's Q rows back into Meta's interleaved rotary order (see rotary.unpermute_rotary_halves)."""
    return unpermute_rotary_halves(weight, config.n_head)


def unpermute_key_rotary(weight: np.ndarray, config: ModelConfig) -> np.ndarray:
    """HF LLaMA's K rows back into Meta's interleaved rotary order (per KV head)."""
    return unpermute_rotary_halves(weight, config.n_head_kv)


def fold_norm_offset(weight: np.ndarray, config: ModelConfig) -> np.ndarray:
    """w + 1: Gemma stores each RMS norm's scale as (w - 1) and multiplies by (1 + w); llama.cpp by w."""
    return weight + np.float32(1.0)


# What a family's table may name. Transforms that do arithmetic (fold_norm_offset) are given
# float32; those that only reorder rows also work on raw 16-bit values.
TRANSFORMS: dict[str, Transform] = {
    "unpermute_query_rotary": unpermute_query_rotary,
    "unpermute_key_rotary": unpermute_key_rotary,
    "fold_norm_offset": fold_norm_offset,
}
ARITHMETIC = frozenset({"fold_norm_offset"})
