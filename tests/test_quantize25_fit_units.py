"""fit's small sums: a budget below one byte, and sizes llama.cpp prints rounded to 0.01 MiB."""

from __future__ import annotations

import pytest

from llamadesk.app.core.errors import BadInputError
from llamadesk.quantize.memory_fit import SIZE_RESOLUTION, TypeFit, auto_choice, parse_memory


@pytest.mark.parametrize("text", ["0.1B", "0.5", "0.0001KB"])
def test_a_budget_below_one_byte_is_refused(text):
    # It passed as more than zero, then became a budget of 0 B.
    with pytest.raises(BadInputError, match="at least one byte"):
        parse_memory(text)


def row(qtype: str, weights: int) -> TypeFit:
    return TypeFit(qtype, 8.0, weights, weights * 2, True, False)


def test_auto_does_not_choose_a_type_smaller_only_by_rounding():
    # Q8_0 of a Q8_0 file: llama.cpp's 2-decimal MiB came out 358 bytes under the file's exact size.
    present = 103_000_000
    rows = [row("Q8_0", present - 358), row("Q6_K", present * 3 // 4)]
    assert auto_choice(rows, present) == "Q6_K"
    assert auto_choice([row("Q8_0", present - SIZE_RESOLUTION - 1)], present) == "Q8_0"
