"""The forward pass of every family llamadesk converts, in numpy over the *source* checkpoint.

It is the reference --verify compares llama.cpp's logits to. It reads the checkpoint's own tensors
(before any permutation, offset or type change) and applies rotary embeddings the way the source
layout defines them (the family's `rotary_pairs`: rotate-half for HF checkpoints, interleaved pairs
for Meta's). What differs between families is read from the checkpoint and the family's table, not
branched on by name: a bias is added where the checkpoint has one, Q/K heads are normalised where it
has their norms. So it checks the converter's name mapping, transforms and hyperparameters
independently of the code that wrote the GGUF. Weights are widened to float32 a block of rows at a
time, so memory stays small whatever the model's size.
"""

from __future__ import annotations

import gguf
import numpy as np

from llamadesk.convert.checkpoint import Checkpoint
from llamadesk.convert.model_config import ModelConfig
from llamadesk.convert.rotary import llama3_rope_factors
from llamadesk.convert.tensor_source import TensorSource, to_float32

T = gguf.MODEL_TENSOR


def _gguf_names(checkpoint: Checkpoint) -> dict[str, TensorSource]:
    name_map = gguf.get_tensor_name_map(checkpoint.config.architecture.gguf_arch, checkpoint.config.n_layer)
    found = {}
    for source in checkpoint.tensors:
        name = name_map.get_name(source.name, try_suffixes=(".weight", ".bias"))
        if name:
            found[name] = source
    return found


ROWS_ELEMENTS = 1 << 22  # weight elements widened to float32 at a time (16 MB)


def _weight(tensors: dict[str, TensorSource], kind: T, block: int | None = None) -> np.ndarray:
    """A 1-D weight (norm) as float32."""
    source = tensors[gguf.TENSOR_NAMES[kind].format(bid=block) + ".weight"]
    values = to_float32(source.read(), source.dtype).copy()
    source.release()
    return values


def _project(x: np.ndarray, tensors: dict[str, TensorSource], kind: T, block: int | None = None) -> np.ndarray:
    """x @ W.T (+ b where the checkpoint has a bias) for a checkpoint matrix W, widening W to float32 a
    block of rows at a time (an 8B model's output matrix alone is 2 GB in float32)."""
    name = gguf.TENSOR_NAMES[kind].format(bid=block)
    source = tensors[name + ".weight"]
    weight = source.read()
    rows = max(1, ROWS_ELEMENTS // weight.shape[1])
    out = np.empty((x.shape[0], weight.shape[0]), dtype=np.float32)
    for start in range(0, weight.shape[0], rows):
        out[:, start : start + rows] = x @ to_float32(weight[start : start + rows], source.dtype).T
        source.release(min(start + rows, weight.shape[0]) / weight.shape[0])
    if (bias := tensors.get(name + ".bias")) is not None:
        out += to_float32(bias.read(), bias.dtype)
    return out


def _has(tensors: dict[str, TensorSource], kind: T, block: int | None = None) -> bool:
    return gguf.TENSOR_NAMES[kind].format(bid=block) + ".weight" in tensors


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    """x / sqrt(mean(x^2) + eps) * weight, per position."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rotary_angles(config: ModelConfig, n_positions: int) -> np.ndarray:
    """position * frequency for each of the head_dim/2 frequencies, with the config's scaling."""
    inv_freq = 1.0 / config.rope_theta ** (np.arange(0, config.head_dim, 2, dtype=np.float64) / config.head_dim)
    if config.rope_type == "linear":
        inv_freq = inv_freq / float(config.rope_scaling["factor"])
    elif config.rope_type == "llama3":
        inv_freq = inv_freq / llama3_rope_factors(config.head_dim, config.rope_theta, config.rope_scaling)
    return np.arange(n_positions, dtype=np.float64)[:, None] * inv_freq[None, :]


def rotate(x: np.ndarray, angles: np.ndarray, interleaved: bool) -> np.ndarray:
    """Rotate each (a, b) pair by its angle; pairs are (2i, 2i+1) when interleaved, else (i, i+d/2)."""
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
        return out
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1).astype(np.float32)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Causal softmax(q k^T / sqrt(d)) v, with KV heads shared by groups of query heads (GQA)."""
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(q.shape[-1])
    n = q.shape[0]
    scores = scores + np.triu(np.full((n, n), -np.inf, dtype=np.float32), k=1)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    scores /= scores.sum(axis=-1, keepdims=True)
    return np.einsum("hqk,khd->qhd", scores, v).reshape(n, -1)


def reference_logits(checkpoint: Checkpoint, tokens: list[int]) -> np.ndarray:
    """Logits (n_tokens x n_vocab) of the source checkpoint for `tokens`, in float32."""
    c = checkpoint.config
    w = _gguf_names(checkpoint)
    embedding = w["token_embd.weight"]
    x = to_float32(embedding.read()[tokens], embedding.dtype)
    angles = rotary_angles(c, len(tokens))
    interleaved = c.architecture.rotary_pairs == "interleaved"
    for i in range(c.n_layer):
        h = rms_norm(x, _weight(w, T.ATTN_NORM, i), c.rms_eps)
        q = _project(h, w, T.ATTN_Q, i).reshape(len(tokens), c.n_head, c.head_dim)
        k = _project(h, w, T.ATTN_K, i).reshape(len(tokens), c.n_head_kv, c.head_dim)
        v = _project(h, w, T.ATTN_V, i).reshape(len(tokens), c.n_head_kv, c.head_dim)
        if _has(w, T.ATTN_Q_NORM, i):  # Qwen3: each head RMS-normalised before the rotation
            q = rms_norm(q, _weight(w, T.ATTN_Q_NORM, i), c.rms_eps)
            k = rms_norm(k, _weight(w, T.ATTN_K_NORM, i), c.rms_eps)
        q, k = rotate(q, angles, interleaved), rotate(k, angles, interleaved)
        x = x + _project(attention(q, k, v), w, T.ATTN_OUT, i)
        h = rms_norm(x, _weight(w, T.FFN_NORM, i), c.rms_eps)
        gate = _project(h, w, T.FFN_GATE, i)
        x = x + _project(gate / (1.0 + np.exp(-gate)) * _project(h, w, T.FFN_UP, i), w, T.FFN_DOWN, i)
    x = rms_norm(x, _weight(w, T.OUTPUT_NORM), c.rms_eps)
    output = T.OUTPUT if "output.weight" in w else T.TOKEN_EMBD  # tied embeddings
    return _project(x, w, output)
