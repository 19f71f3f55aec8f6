"""Facts about the machine llamadesk runs on: cores and memory.

psutil reads these the same way on Linux, macOS and Windows, so nothing here guesses per OS. What
the llama.cpp build can do (CPU, CUDA, Metal) is the engine's to say: see engine.build_info.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class MachineFacts:
    """Cores and memory as the OS reports them now."""

    physical_cores: int
    logical_cores: int
    total_ram: int
    available_ram: int


def machine_facts() -> MachineFacts:
    """Read the machine's cores and memory; cores honour the process's CPU affinity."""
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    try:
        usable = len(os.sched_getaffinity(0))  # containers and taskset limit what we may use
    except AttributeError:  # macOS and Windows have no affinity API here
        usable = logical
    physical = max(1, min(physical, usable))
    memory = psutil.virtual_memory()
    return MachineFacts(
        physical_cores=physical,
        logical_cores=min(logical, usable),
        total_ram=memory.total,
        available_ram=memory.available,
    )


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB', as sizes are shown everywhere in llamadesk."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
