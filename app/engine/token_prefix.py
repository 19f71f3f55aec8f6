"""How many leading tokens two sequences share: what a KV cache holding one can keep for the other.

The engine's own cache, the batched decoder's slots and the on-disk prompt cache all reuse the
tokens a new prompt has in common with what was evaluated before, and decode only the rest.
"""

from __future__ import annotations

from collections.abc import Sequence


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """The number of leading tokens `a` and `b` have in common."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
