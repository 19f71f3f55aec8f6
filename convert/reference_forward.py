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
from llamadesk.convert.rotary import llama3_rope_factors, longrope_attention_factor
from llamadesk.convert.tensor_source import TensorSource, to_float32

T = gguf.MODEL_TENSOR


def _gguf_names(checkpoint: Checkpoint) -> dict[str, TensorSource]:
    name_map = gguf.get_tensor_name_map(checkpoint.config.architecture.gguf_arch, checkpoint.config.n_layer)
    found = {}
    for source in checkpoint.tensors:
        own_name = checkpoint.config.architecture.language_model_name(source.name)
        name = own_name and name_map.get_name(own_name, try_suffixes=(".weight", ".bias"))
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


def rotary_angles(config: ModelConfig, n_positions: int, sliding: bool = False, n_ctx: int | None = None) -> np.ndarray:
    """position * frequency for each of the rotary_dim/2 frequencies, with the config's scaling.

    Sliding-window layers (Gemma 3's local ones) use their own base and no scaling. LongRoPE picks
    its long factors past the original context: transformers by the sequence's length, llama.cpp by
    the context it was given (`n_ctx`, when the result is compared with a llama.cpp run).
    """
    # Gemma 3's local layers have their own base (transformers' default 10000); Gemma 2's share the global one.
    own_base = "rope_theta_swa" in config.architecture.extra_gguf.values()
    theta = (config.rope_theta_swa or 10000.0) if sliding and own_base else config.rope_theta
    dims = config.rotary_dim  # the whole head, or its leading part (Phi-4-mini's partial rotary)
    inv_freq = 1.0 / theta ** (np.arange(0, dims, 2, dtype=np.float64) / dims)
    if not sliding and config.rope_type == "linear":
        inv_freq = inv_freq / float(config.rope_scaling["factor"])
    elif not sliding and config.rope_type == "llama3":
        inv_freq = inv_freq / llama3_rope_factors(config.head_dim, config.rope_theta, config.rope_scaling)
    elif not sliding and config.rope_type == "longrope":  # the long factors once past the original context
        long = (n_ctx or n_positions) > config.rope_scaling["original_max_position_embeddings"]
        inv_freq = inv_freq / np.asarray(config.rope_scaling["long_factor" if long else "short_factor"])
    return np.arange(n_positions, dtype=np.float64)[:, None] * inv_freq[None, :]


def rotate(x: np.ndarray, angles: np.ndarray, interleaved: bool, scale: float = 1.0) -> np.ndarray:
    """Rotate each (a, b) pair by its angle; pairs are (2i, 2i+1) when interleaved, else (i, i+r/2).

    Only the first r = 2 * angles.shape[-1] dimensions of each head turn (all of them unless the
    model rotates part of its heads); the rest pass through unchanged. `scale` multiplies cos and
    sin (LongRoPE's attention factor), so it too reaches the rotated dimensions only.
    """
    rotated = 2 * angles.shape[-1]
    if rotated < x.shape[-1]:
        return np.concatenate([rotate(x[..., :rotated], angles, interleaved, scale), x[..., rotated:]], axis=-1)
    cos, sin = np.cos(angles)[:, None, :] * scale, np.sin(angles)[:, None, :] * scale
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
        return out
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1).astype(np.float32)


def attention(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    scale_dim: float | None = None,
    window: int | None = None,
    softcap: float | None = None,
) -> np.ndarray:
    """Causal softmax(q k^T / sqrt(d)) v, with KV heads shared by groups of query heads (GQA).

    `scale_dim` replaces d in the scale where the config says so (Gemma's query_pre_attn_scalar);
    with a `window`, position i sees only positions i-window+1 .. i (sliding-window layers); with a
    `softcap`, scores become tanh(s / cap) * cap before the mask (Gemma 2).
    """
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(scale_dim or q.shape[-1])
    if softcap:
        scores = np.tanh(scores / softcap) * softcap
    n = q.shape[0]
    scores = scores + np.triu(np.full((n, n), -np.inf, dtype=np.float32), k=1)
    if window is not None:
        scores = scores + np.tril(np.full((n, n), -np.inf, dtype=np.float32), k=-window)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    scores /= scores.sum(axis=-1, keepdims=True)
    return np.einsum("hqk,khd->qhd", scores, v).reshape(n, -1)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """GELU by its tanh approximation: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def silu(x: np.ndarray) -> np.ndarray:
    """x sigmoid(x)."""
    return x / (1.0 + np.exp(-x))


ACTIVATIONS = {"silu": silu, "gelu_pytorch_tanh": gelu_tanh}


def reference_logits(checkpoint: Checkpoint, tokens: list[int], n_ctx: int | None = None) -> np.ndarray:
    """Logits (n_tokens x n_vocab) of the source checkpoint for `tokens`, in float32.

    `n_ctx`: the context llama.cpp runs with, where that changes the result (LongRoPE's factors);
    None computes what transformers does.
    """
    c = checkpoint.config
    family = c.architecture
    w = _gguf_names(checkpoint)
    # Norms whose stored scale is (w - 1) (Gemma) multiply by (1 + w).
    offset = {gguf.TENSOR_NAMES[kind] for kind, name in family.transforms.items() if name == "fold_norm_offset"}

    def norm(x: np.ndarray, kind: T, block: int | None = None) -> np.ndarray:
        shift = 1.0 if gguf.TENSOR_NAMES[kind] in offset else 0.0  # by name: Gemma's FFN_PRE_NORM is "ffn_norm"
        return rms_norm(x, _weight(w, kind, block) + shift, c.rms_eps)

    embedding = w["token_embd.weight"]
    x = to_float32(embedding.read()[tokens], embedding.dtype)
    if family.scale_embedding:
        x = x * np.float32(np.sqrt(c.n_embd))
    angles = {sliding: rotary_angles(c, len(tokens), sliding, n_ctx) for sliding in (False, True)}
    interleaved = family.rotary_pairs == "interleaved"
    q_rows, kv_rows = c.n_head * c.head_dim, c.n_head_kv * c.head_dim
    rotary_scale = 1.0  # LongRoPE scales cos and sin
    if c.rope_type == "longrope":
        rotary_scale = longrope_attention_factor(
            c.context_length, int(c.rope_scaling["original_max_position_embeddings"])
        )
    activation = ACTIVATIONS[family.activation]
    for i in range(c.n_layer):
        sliding = c.is_sliding(i)
        h = norm(x, T.ATTN_NORM, i)
        if _has(w, T.ATTN_QKV, i):  # Phi-3: one matrix, rows Q then K then V
            q, k, v = np.split(_project(h, w, T.ATTN_QKV, i), [q_rows, q_rows + kv_rows], axis=-1)
        else:
            q, k, v = (_project(h, w, kind, i) for kind in (T.ATTN_Q, T.ATTN_K, T.ATTN_V))
        q = q.reshape(len(tokens), c.n_head, c.head_dim)
        k, v = (t.reshape(len(tokens), c.n_head_kv, c.head_dim) for t in (k, v))
        if _has(w, T.ATTN_Q_NORM, i):  # Qwen3, Gemma 3: each head RMS-normalised before the rotation
            q, k = norm(q, T.ATTN_Q_NORM, i), norm(k, T.ATTN_K_NORM, i)
        q, k = (rotate(t, angles[sliding], interleaved, rotary_scale) for t in (q, k))
        window = c.extra["sliding_window"] if sliding else None
        heads = attention(q, k, v, c.extra.get("query_pre_attn_scalar"), window, c.extra.get("attn_logit_softcapping"))
        out = _project(heads, w, T.ATTN_OUT, i)
        if _has(w, T.ATTN_POST_NORM, i):  # Gemma's sandwich norms
            out = norm(out, T.ATTN_POST_NORM, i)
        x = x + out
        h = norm(x, T.FFN_NORM, i)
        if family.fused_gate_up:  # Phi-3: one matrix, gate rows first
            gate, up = np.split(_project(h, w, T.FFN_UP, i), 2, axis=-1)
        else:
            gate, up = _project(h, w, T.FFN_GATE, i), _project(h, w, T.FFN_UP, i)
        out = _project(activation(gate) * up, w, T.FFN_DOWN, i)
        if _has(w, T.FFN_POST_NORM, i):
            out = norm(out, T.FFN_POST_NORM, i)
        x = x + out
    x = norm(x, T.OUTPUT_NORM)
    output = T.OUTPUT if "output.weight" in w else T.TOKEN_EMBD  # tied embeddings
    logits = _project(x, w, output)
    if cap := c.extra.get("final_logit_softcapping"):
        logits = np.tanh(logits / cap) * cap
    return logits
