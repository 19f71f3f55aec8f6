"""A numpy view of one row of llama.cpp's logits, made without building ctypes types per token.

`np.ctypeslib.as_array(pointer, shape)` builds a ctypes array type and goes through the buffer
protocol on every call. In the chat loop, right after a decode has pushed the interpreter's data
out of the CPU caches, that took 57-67 us per token on the development machine, three times the
argmax it serves and a third of all the Python between two tokens (bench/RESULTS.md "chat
path"). A row's view is made once per address and reused: llama.cpp writes each decode's logits
into the same output buffer, which moves only when it must grow.

A view is only ever used at an address llama.cpp has just returned as the start of a row of
`n_vocab` floats, so an entry left from a freed buffer is either never asked for again or, if the
address is reused, a row of the new buffer.
"""

from __future__ import annotations

import ctypes

import llama_cpp
import numpy as np

MAX_VIEWS = 4096  # rows of every batch position of a few contexts; past that, start again

_views: dict[tuple[int, int], np.ndarray] = {}


def logits_row(context: llama_cpp.llama_context_p, index: int, n_vocab: int) -> np.ndarray:
    """The logits of batch position `index` (-1: the last), as float32; valid until the next decode.

    RuntimeError if llama.cpp has no logits there (a position decoded without asking for them).
    """
    pointer = llama_cpp.llama_get_logits_ith(context, index)
    address = ctypes.cast(pointer, ctypes.c_void_p).value
    if not address:
        raise RuntimeError(f"llama.cpp has no logits for batch position {index}")
    key = (address, n_vocab)
    view = _views.get(key)
    if view is None:
        if len(_views) >= MAX_VIEWS:
            _views.clear()
        view = _views[key] = np.frombuffer((ctypes.c_float * n_vocab).from_address(address), dtype=np.float32)
    return view
