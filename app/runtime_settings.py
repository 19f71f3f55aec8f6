"""Settings that fit the machine: threads, GPU layers, context length, flash attention.

Plain functions of the model's summary and the machine's facts, so they are tested without
loading anything. Every choice carries a reason, which `--stats` and the UI can show.
"""

from __future__ import annotations

from .engine.types import ActiveSettings, LoadSettings
from .errors import BadInputError
from .gguf_file import GGUFSummary
from .machine import MachineFacts, format_bytes

# Memory kept free for the OS, llama.cpp's compute buffers and the app itself.
RESERVED_RAM_FRACTION = 0.10
RESERVED_RAM_BYTES = 256 * 1024**2
# A chosen (not requested) context uses at most this share of the memory left after weights, so
# the default never pushes a laptop into swap.
DEFAULT_KV_SHARE = 0.5
MIN_CONTEXT = 256
ALL_LAYERS = 999  # llama.cpp clamps to the model's layer count


def memory_for_kv(summary: GGUFSummary, machine: MachineFacts) -> int:
    """Bytes of RAM left for the KV cache once the weights and a reserve are accounted for."""
    reserve = RESERVED_RAM_BYTES + RESERVED_RAM_FRACTION * machine.total_ram
    return int(machine.available_ram - summary.tensor_bytes - reserve)


def kv_cache_bytes(summary: GGUFSummary, n_ctx: int) -> int:
    """f16 KV cache size: 2 (K,V) x layers x KV heads x head dim x 2 bytes, per token."""
    return summary.kv_bytes_per_token_f16 * n_ctx


def choose_context(summary: GGUFSummary, machine: MachineFacts, requested: int | None) -> tuple[int, str]:
    """The context length to load with, and why; a request that cannot fit is refused."""
    available = memory_for_kv(summary, machine)
    per_token = max(1, summary.kv_bytes_per_token_f16)
    if requested is not None:
        if requested < 1:
            raise BadInputError(f"--ctx must be a positive number of tokens, not {requested}")
        if kv_cache_bytes(summary, requested) > available:
            largest = max(0, available // per_token)
            raise BadInputError(
                f"a context of {requested} tokens needs {format_bytes(kv_cache_bytes(summary, requested))} "
                f"of KV cache but only {format_bytes(max(0, available))} of memory is free; "
                f"use --ctx {largest} or less"
            )
        return requested, "requested"
    trained = summary.context_length or 4096
    budget = int(available * DEFAULT_KV_SHARE) // per_token
    if budget >= trained:
        return trained, "the model's trained context"
    n_ctx = max(MIN_CONTEXT, budget // 256 * 256)
    return n_ctx, f"capped by free memory ({format_bytes(max(0, available))})"


def choose_settings(
    summary: GGUFSummary,
    machine: MachineFacts,
    gpu_offload: bool,
    requested: LoadSettings,
) -> ActiveSettings:
    """Fill every unset field of `requested` with what fits this machine and this model."""
    reasons: dict[str, str] = {}
    n_ctx, reasons["n_ctx"] = choose_context(summary, machine, requested.n_ctx)

    if requested.n_threads is not None:
        if requested.n_threads < 1:
            raise BadInputError(f"--threads must be at least 1, not {requested.n_threads}")
        n_threads, reasons["n_threads"] = requested.n_threads, "requested"
    else:
        # Generation is memory-bound and hyper-threads share one core's units: llama.cpp runs
        # fastest with one thread per physical core.
        n_threads, reasons["n_threads"] = machine.physical_cores, "one per physical core"

    if requested.n_gpu_layers is not None:
        n_gpu_layers, reasons["n_gpu_layers"] = requested.n_gpu_layers, "requested"
    elif gpu_offload:
        n_gpu_layers, reasons["n_gpu_layers"] = ALL_LAYERS, "the build has a GPU backend"
    else:
        n_gpu_layers, reasons["n_gpu_layers"] = 0, "CPU-only build"

    if requested.flash_attn is not None:
        flash_attn, reasons["flash_attn"] = requested.flash_attn, "requested"
    else:
        # llama.cpp's fused attention kernel is faster on CPU, CUDA and Metal and needs less
        # scratch memory; llama-bench turns it on by default too.
        flash_attn, reasons["flash_attn"] = True, "faster and smaller on every llama.cpp backend"

    n_batch = max(1, min(requested.n_batch, n_ctx))
    return ActiveSettings(
        n_ctx=n_ctx,
        n_threads=n_threads,
        n_gpu_layers=n_gpu_layers,
        flash_attn=flash_attn,
        n_batch=n_batch,
        reasons=reasons,
    )
