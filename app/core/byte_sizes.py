"""Sizes in bytes as llamadesk shows them to people."""

from __future__ import annotations


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB', as sizes are shown everywhere in llamadesk."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
