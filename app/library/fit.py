"""Whether a model fits this machine's memory: weights plus the KV cache of a default context.

What the model needs is core.memory_budget's estimate (weights, KV cache, compute and output
buffers), the same `llamadesk fit` and `quantize -t auto` use; the reserve (memory kept for the OS
and the app) is the one the engine fits its settings with, so a model listed as fitting also
loads with the settings llamadesk would choose. What the model needs and what is kept free are reported apart: a 94 MiB
model does not "need" the 2.7 GiB every model leaves free.
"""

from __future__ import annotations

from dataclasses import dataclass

from llamadesk.app.core.gguf_file import GGUFSummary
from llamadesk.app.core.machine import MachineFacts
from llamadesk.app.core.memory_budget import estimate_memory, ram_budget, ram_reserve

# The context a model is judged by: what a chat needs, not the 128k some models are trained for.
DEFAULT_FIT_CONTEXT = 4096
# Before a download the KV cache size is unknown (it depends on the architecture, read from the
# file); weights may take this share of the free memory, the rest is left for cache and buffers.
WEIGHTS_SHARE_BEFORE_DOWNLOAD = 0.8


@dataclass(frozen=True)
class MemoryFit:
    """The model's own need (weights, KV cache at `context`, buffers) and the reserve, against what is free."""

    fits: bool
    needed: int
    reserve: int
    available: int
    context: int


def memory_fit(summary: GGUFSummary, machine: MachineFacts) -> MemoryFit:
    """Whether the model runs here with a default context without swapping."""
    context = min(summary.context_length or DEFAULT_FIT_CONTEXT, DEFAULT_FIT_CONTEXT)
    needed = estimate_memory(summary, summary.n_vocab, summary.tensor_bytes, context).total
    reserve = ram_reserve(machine)
    return MemoryFit(
        fits=needed + reserve <= machine.available_ram,
        needed=needed,
        reserve=reserve,
        available=machine.available_ram,
        context=context,
    )


def memory_for_weights(machine: MachineFacts) -> int:
    """The largest model file worth downloading for this machine, before its architecture is known."""
    return int(ram_budget(machine) * WEIGHTS_SHARE_BEFORE_DOWNLOAD)
