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

# llama_get_logits_ith as a function of its own that returns the row's address as an int:
# llama_cpp's binding returns a ctypes pointer object, which then had to be cast to an address,
# two ctypes objects per token (1.2 us against 0.4 in a warm loop; more right after a decode).
# Indexing the library (rather than taking its attribute) makes a new function object, so
# llama_cpp's own binding keeps its types.
_logits_address = llama_cpp.llama_cpp._lib["llama_get_logits_ith"]
_logits_address.argtypes = [ctypes.c_void_p, ctypes.c_int32]
_logits_address.restype = ctypes.c_void_p


def logits_row(context: llama_cpp.llama_context_p, index: int, n_vocab: int) -> np.ndarray:
    """The logits of batch position `index` (-1: the last), as float32; valid until the next decode.

    RuntimeError if llama.cpp has no logits there (a position decoded without asking for them).
    """
    address = _logits_address(context, index)
    if not address:
        raise RuntimeError(f"llama.cpp has no logits for batch position {index}")
    key = (address, n_vocab)
    view = _views.get(key)
    if view is None:
        if len(_views) >= MAX_VIEWS:
            _views.clear()
        view = _views[key] = np.frombuffer((ctypes.c_float * n_vocab).from_address(address), dtype=np.float32)
    return view
