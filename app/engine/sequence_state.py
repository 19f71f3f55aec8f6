"""A conversation's KV cache as bytes and back, through llama.cpp's per-sequence state API.

The prompt cache on disk (chat/prompt_cache.py) keeps a conversation's KV cache between runs, so
reopening a long conversation decodes only its new tokens. This module is the engine's half: it
copies sequence 0's cells out of the context together with the tokens they hold (llama-cpp-python
tracks those beside the context), puts them back, and names what a saved state depends on.

A restore is checked twice before anything trusts it: llama.cpp refuses a state whose layer count,
types, row sizes or V layout differ from this context's (and returns 0), and the restored cells
must then span positions 0..n-1. Whatever fails leaves the KV cache empty, so the caller simply
decodes the prompt as if there had been no cache. A model with sliding-window attention saves only
its window, so once a conversation is longer than the window its state does not start at 0 and
is refused too (decoded afresh: correct, not faster).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import llama_cpp

from llamadesk.app.engine.build_info import build_info
from llamadesk.app.engine.context_cells import usable_context

if TYPE_CHECKING:
    from llamadesk.app.core.gguf_file import GGUFSummary
    from llamadesk.app.engine.types import ActiveSettings

SEQUENCE = 0  # llamadesk's engine decodes one sequence; its id in llama.cpp's KV cache


@dataclass(frozen=True)
class SequenceSnapshot:
    """The tokens sequence 0 holds, and its KV cells as llama.cpp wrote them (a bytes-like object)."""

    tokens: tuple[int, ...]
    state: memoryview

    @property
    def n_bytes(self) -> int:
        return self.state.nbytes


def state_identity(
    summary: GGUFSummary, settings: ActiveSettings, adapters: Sequence[tuple[Path, float]] = ()
) -> dict[str, object]:
    """What a saved state is only valid for: the model file and the settings that shape its KV cache.

    The file by path, size and modification time (a model replaced under the same name is another
    model); the KV type and flash attention (llama.cpp lays V out differently without it); whether
    layers run on a GPU (other kernels, other numbers); and the llama.cpp build, whose state format
    may change between versions. Not the context size: a cell's keys and values do not depend on
    it, and llama.cpp refuses a state with more cells than the context has; the size llamadesk
    chooses moves with free memory, and a restart with a little less would otherwise find nothing.
    Nor threads or batch size, which do not change what the cells hold. LoRA adapters change every
    layer's keys and values, so each one (file and scale) is part of the identity.
    """
    stat = summary.path.stat()
    applied = []
    for path, scale in adapters:
        adapter_stat = path.stat()
        applied.append([str(path.resolve()), adapter_stat.st_size, adapter_stat.st_mtime_ns, scale])
    return {
        "model": str(summary.path.resolve()),
        "model_size": stat.st_size,
        "model_mtime_ns": stat.st_mtime_ns,
        "kv_cache_type": settings.kv_cache_type,
        "flash_attn": settings.flash_attn,
        "n_gpu_layers": settings.n_gpu_layers,
        "llama_cpp_python": build_info().llama_cpp_python_version,
        "adapters": applied,
    }


def _memory(llama: llama_cpp.Llama):
    return llama_cpp.llama_get_memory(llama._ctx.ctx)


def _holds_positions(llama: llama_cpp.Llama, n_tokens: int) -> bool:
    """Sequence 0 holds exactly positions 0..n_tokens-1 (llama.cpp says -1 for an empty sequence)."""
    memory = _memory(llama)
    if n_tokens == 0:
        return llama_cpp.llama_memory_seq_pos_max(memory, SEQUENCE) == -1
    return (
        llama_cpp.llama_memory_seq_pos_min(memory, SEQUENCE) == 0
        and llama_cpp.llama_memory_seq_pos_max(memory, SEQUENCE) == n_tokens - 1
    )


def capture(llama: llama_cpp.Llama) -> SequenceSnapshot | None:
    """Sequence 0's tokens and KV cells, or None when there is nothing (sound) to keep.

    A decode stopped mid-prompt can leave cells past the tokens llama-cpp-python counted; those
    are dropped first, as its next decode would drop them.
    """
    n_tokens = int(llama.n_tokens)
    if n_tokens == 0:
        return None
    llama_cpp.llama_memory_seq_rm(_memory(llama), SEQUENCE, n_tokens, -1)
    if not _holds_positions(llama, n_tokens):
        return None
    ctx = llama._ctx.ctx
    size = llama_cpp.llama_state_seq_get_size(ctx, SEQUENCE)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, SEQUENCE)
    if written == 0 or written > size:
        return None
    tokens = tuple(int(t) for t in llama.input_ids[:n_tokens])
    return SequenceSnapshot(tokens, memoryview(buffer).cast("B")[:written])


def restore(llama: llama_cpp.Llama, tokens: tuple[int, ...] | list[int], state: bytearray) -> bool:
    """Put a captured sequence back as sequence 0; True when it now holds `tokens`, else it is empty.

    `state` must be writable (a bytearray): llama.cpp reads it in place, without a copy.
    """
    n_tokens = len(tokens)
    if n_tokens == 0 or n_tokens >= usable_context(llama) or not state:
        return False
    buffer = (ctypes.c_uint8 * len(state)).from_buffer(state)
    # The old cells go first: from here on llama-cpp-python's token list must say "nothing".
    llama_cpp.llama_memory_seq_rm(_memory(llama), SEQUENCE, -1, -1)
    llama.n_tokens = 0
    read = llama_cpp.llama_state_seq_set_data(llama._ctx.ctx, buffer, len(state), SEQUENCE)
    if read != len(state) or not _holds_positions(llama, n_tokens):
        # All of it, not seq_rm: a cell at position INT32_MAX lies outside every range seq_rm takes,
        # and would make the next decode fail. The engine decodes one sequence, so nothing else is lost.
        llama_cpp.llama_memory_clear(_memory(llama), True)
        return False
    llama.input_ids[:n_tokens] = tokens
    llama.n_tokens = n_tokens
    # No logits came with the cells: generate() decodes at least the last token again before sampling.
    llama._requires_eval = True
    return True
