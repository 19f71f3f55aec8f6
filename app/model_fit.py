"""Whether a model fits this machine's memory: weights plus the KV cache of a default context.

The same reserve as runtime_settings (memory kept for the OS, compute buffers and the app), so a
model listed as fitting also loads with the settings llamadesk would choose.
"""

from __future__ import annotations

from dataclasses import dataclass

from .gguf_file import GGUFSummary
from .machine import MachineFacts
from .runtime_settings import RESERVED_RAM_BYTES, RESERVED_RAM_FRACTION, kv_cache_bytes

# The context a model is judged by: what a chat needs, not the 128k some models are trained for.
DEFAULT_FIT_CONTEXT = 4096
# Before a download the KV cache size is unknown (it depends on the architecture, read from the
# file); weights may take this share of the free memory, the rest is left for cache and buffers.
WEIGHTS_SHARE_BEFORE_DOWNLOAD = 0.8


@dataclass(frozen=True)
class MemoryFit:
    """Bytes needed (weights + KV cache at `context` + reserve) against bytes free now."""

    fits: bool
    needed: int
    available: int
    context: int


def reserved_memory(machine: MachineFacts) -> int:
    return int(RESERVED_RAM_BYTES + RESERVED_RAM_FRACTION * machine.total_ram)


def memory_fit(summary: GGUFSummary, machine: MachineFacts) -> MemoryFit:
    """Whether the model runs here with a default context without swapping."""
    context = min(summary.context_length or DEFAULT_FIT_CONTEXT, DEFAULT_FIT_CONTEXT)
    needed = summary.tensor_bytes + kv_cache_bytes(summary, context) + reserved_memory(machine)
    return MemoryFit(fits=needed <= machine.available_ram, needed=needed,
                     available=machine.available_ram, context=context)


def memory_for_weights(machine: MachineFacts) -> int:
    """The largest model file worth downloading for this machine, before its architecture is known."""
    return max(0, int((machine.available_ram - reserved_memory(machine)) * WEIGHTS_SHARE_BEFORE_DOWNLOAD))
