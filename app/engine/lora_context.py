"""LoRA adapters loaded once onto a model and set on every context that decodes for it.

llama.cpp loads an adapter per model (`llama_adapter_lora_init`) but applies it per context
(`llama_set_adapters_lora`). An engine has its own context and makes more (each batched decoder's),
so every one of them must be given the adapters, or it silently runs the bare base model.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import llama_cpp

# An adapter loaded onto a model (llama.cpp frees it with the model) and the scale it runs at.
LoadedAdapter = tuple[llama_cpp.llama_adapter_lora_p, float]


def set_adapters_on_context(context: llama_cpp.llama_context_p, adapters: Sequence[LoadedAdapter]) -> bool:
    """Set `adapters`, with their scales, on `context` (none: nothing to do); False when llama.cpp refuses."""
    if not adapters:
        return True
    handles = (llama_cpp.llama_adapter_lora_p_ctypes * len(adapters))(*(handle for handle, _ in adapters))
    scales = (ctypes.c_float * len(adapters))(*(scale for _, scale in adapters))
    return llama_cpp.llama_set_adapters_lora(context, handles, len(adapters), scales) == 0
