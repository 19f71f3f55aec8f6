"""The memory formulas every part of llamadesk agrees on: the reserve kept free and the KV cache.

One place for them, so the settings the engine fits, the library's "fits" column and
`quantize -t auto` never disagree about whether a model fits.
"""

from __future__ import annotations

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


class AttentionShape(Protocol):
    """What the KV cache's size depends on (GGUFSummary has it)."""

    n_layers: int
    n_head_kv: int
    head_dim_k: int
    head_dim_v: int


def kv_bytes_per_token(shape: AttentionShape, kv_type: str = DEFAULT_KV_TYPE) -> int:
    """KV cache bytes per token of context, every layer: K and V, every KV head, at `kv_type`."""
    elements = shape.n_layers * shape.n_head_kv * (shape.head_dim_k + shape.head_dim_v)
    return max(1, int(elements * KV_CACHE_TYPES[kv_type] + 0.5))


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
