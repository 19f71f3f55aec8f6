"""How many tokens a llama-cpp-python `Llama` can hold: the smaller of llama.cpp's context and its own arrays.

llama.cpp rounds a context up to a multiple of 256 cells (llama-context.cpp pads n_ctx), and
`Llama.n_ctx()` reports that; llama-cpp-python sizes its record of the tokens (`input_ids`) and its
logits (`scores`) by the n_ctx it was given. A context asked for as 1,000 tokens has 1,024 cells but
room for 1,000 tokens in Python, and writing the 1,001st would raise IndexError. So the size asked
for is the one that holds, and the padding cells stay unused, as the user set no more than that.
"""

from __future__ import annotations

import llama_cpp


def usable_context(llama: llama_cpp.Llama) -> int:
    return min(llama.n_ctx(), len(llama.input_ids))
