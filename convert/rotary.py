"""The rotary-embedding computations conversion needs, each named after what it computes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def unpermute_rotary_halves(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Undo transformers' Q/K reordering: per head, rows [x0..x(d/2-1), y0..] back to [x0, y0, x1, y1, ...].

    transformers rotates the two halves of each head (rotate_half); Meta and llama.cpp rotate
    interleaved pairs. Works on any dtype (bf16 is raw bits), since it only moves rows.
    """
    rows = weight.shape[0]
    return weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def llama3_rope_factors(head_dim: int, theta: float, scaling: dict[str, Any]) -> np.ndarray:
    """Llama 3.1's per-frequency rope factors, the `rope_freqs` tensor llama.cpp divides frequencies by.

    Wavelengths shorter than original_context/high_freq_factor are kept (factor 1), longer than
    original_context/low_freq_factor are stretched by `factor`, and the band between blends smoothly.
    """
    factor = float(scaling.get("factor", 8.0))
    low = float(scaling.get("low_freq_factor", 1.0))
    high = float(scaling.get("high_freq_factor", 4.0))
    original = float(scaling.get("original_max_position_embeddings", 8192))
    freqs = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    factors = []
    for freq in freqs:
        wavelength = 2 * math.pi / freq
        if wavelength < original / high:
            factors.append(1.0)
        elif wavelength > original / low:
            factors.append(factor)
        else:
            smooth = (original / wavelength - low) / (high - low)
            factors.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(factors, dtype=np.float32)


def longrope_attention_factor(context_length: int, original_context: int) -> float:
    """LongRoPE's (Phi-3's) scale on cos/sin: sqrt(1 + ln(s) / ln(original)) for s = context/original > 1."""
    scale = context_length / original_context
    return math.sqrt(1 + math.log(scale) / math.log(original_context)) if scale > 1.0 else 1.0
