"""The memory formulas every part of llamadesk agrees on: the reserve kept free, the KV cache,
and what a loaded model needs in all.

One place for them, so the settings the engine fits, the library's "fits" column and
`quantize -t auto` / `llamadesk fit` never disagree about whether a model fits.

A model's memory = weights + KV cache + compute buffers + output buffer, where
- weights: its tensor bytes (for a type not made yet, llama.cpp's own dry run says);
- KV cache: K and V for every layer, KV head and token of context, at the cache's type;
- compute: llama.cpp sizes its scratch buffer for the largest step of one micro-batch, which for
  these models is the output layer's logits (n_ubatch x n_vocab floats) plus two n_embd-wide
  activations per token and the f16 attention mask (n_ubatch x n_ctx) flash attention reads;
  without flash attention, a layer's attention scores (n_ubatch x n_ctx x query heads, f32)
  share that room with the logits, and outgrow them at long contexts;
- output: one row of logits (n_vocab floats).
The estimate is checked against what llama.cpp reports when it loads (tests/test_quantize_fit.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from llamadesk.app.core.machine import MachineFacts

# Memory kept free for the OS, llama.cpp's compute buffers and the app itself.
RESERVED_RAM_FRACTION = 0.10
RESERVED_RAM_BYTES = 256 * 1024**2
# On a GPU: CUDA/Metal context, compute buffers and the display.
RESERVED_VRAM_FRACTION = 0.05
RESERVED_VRAM_BYTES = 512 * 1024**2

# KV cache element types llama.cpp accepts for type_k/type_v: bytes per element. Quantized types
# store 32 elements per block (ggml's block sizes).
KV_CACHE_TYPES = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q5_1": 24 / 32,
    "q5_0": 22 / 32,
    "q4_1": 20 / 32,
    "q4_0": 18 / 32,
    "iq4_nl": 18 / 32,
}
DEFAULT_KV_TYPE = "f16"

DEFAULT_UBATCH = 512  # llamadesk loads with n_batch = n_ubatch = 512
FLOAT_BYTES = 4
F16_BYTES = 2


class AttentionShape(Protocol):
    """What the KV cache's size depends on (GGUFSummary has it)."""

    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim_k: int
    head_dim_v: int


def kv_bytes_per_token(shape: AttentionShape, kv_type: str = DEFAULT_KV_TYPE) -> int:
    """KV cache bytes per token of context, every layer: K and V, every KV head, at `kv_type`."""
    elements = shape.n_layers * shape.n_head_kv * (shape.head_dim_k + shape.head_dim_v)
    return max(1, int(elements * KV_CACHE_TYPES[kv_type] + 0.5))


def attention_scratch_per_token(shape: AttentionShape, n_ubatch: int = DEFAULT_UBATCH) -> int:
    """Without flash attention: compute-buffer bytes per token of context for one micro-batch's
    attention scores (n_ubatch x context x query heads, f32). llama.cpp reuses the logits' room for
    them, so this is an upper bound on what the context adds (module doc)."""
    return FLOAT_BYTES * n_ubatch * shape.n_head


def kv_cache_bytes(shape: AttentionShape, n_ctx: int, kv_type: str = DEFAULT_KV_TYPE) -> int:
    """The KV cache's size for `n_ctx` tokens."""
    return kv_bytes_per_token(shape, kv_type) * n_ctx


def ram_reserve(machine: MachineFacts) -> int:
    """RAM never planned for a model: a fixed floor plus a share of the machine's memory."""
    return int(RESERVED_RAM_BYTES + RESERVED_RAM_FRACTION * machine.total_ram)


def vram_reserve(free: int) -> int:
    """GPU memory never planned for a model, out of `free` bytes."""
    return int(RESERVED_VRAM_BYTES + RESERVED_VRAM_FRACTION * free)


def ram_budget(machine: MachineFacts) -> int:
    """RAM a model may use now: what is available less the reserve."""
    return max(0, int(machine.available_ram - ram_reserve(machine)))


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a model needs loaded on the CPU with a given context, by purpose."""

    weights: int
    kv_cache: int
    compute: int
    output: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute + self.output


def estimate_memory(
    shape: AttentionShape,
    n_vocab: int,
    weights_bytes: int,
    n_ctx: int,
    n_ubatch: int = DEFAULT_UBATCH,
    kv_type: str = DEFAULT_KV_TYPE,
    flash_attn: bool = True,
) -> MemoryEstimate:
    """The memory llama.cpp allocates to run a model with `n_ctx` tokens of context (module doc)."""
    ubatch = min(n_ubatch, n_ctx)
    # Without flash attention a layer's attention scores (ubatch x context x heads) take the room
    # the logits use at the end of the graph, whichever is larger, and the mask stays f32 (flash
    # attention reads an f16 copy).
    widest = n_vocab if flash_attn else max(n_vocab, shape.n_head * n_ctx)
    mask_bytes = F16_BYTES if flash_attn else FLOAT_BYTES
    compute = FLOAT_BYTES * ubatch * (widest + 2 * shape.n_embd) + mask_bytes * ubatch * n_ctx
    return MemoryEstimate(
        weights=weights_bytes,
        kv_cache=kv_cache_bytes(shape, n_ctx, kv_type),
        compute=compute,
        output=FLOAT_BYTES * n_vocab,
    )
