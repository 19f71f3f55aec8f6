"""Whether a model file fits in this machine's memory, as the model picker shows it."""

from __future__ import annotations

from .machine import MachineFacts
from .runtime_settings import RESERVED_RAM_BYTES, RESERVED_RAM_FRACTION

# A small context's KV cache and llama.cpp's compute buffers on top of the weights.
WORKING_MEMORY_SHARE = 0.2


def fits_in_memory(file_size: int, machine: MachineFacts) -> bool:
    """True when the weights plus working memory fit in the RAM available now, keeping the reserve."""
    reserve = RESERVED_RAM_BYTES + RESERVED_RAM_FRACTION * machine.total_ram
    return file_size * (1 + WORKING_MEMORY_SHARE) + reserve <= machine.available_ram
