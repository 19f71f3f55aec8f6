"""Settings that fit the machine: threads, GPU layers, context length, KV cache, flash attention.

Plain functions of the model's summary, the machine's facts and the GPU the build can use, so
they are tested without loading anything. Every choice carries a reason, which `doctor`,
`--stats` and the UI show. Anything the user asked for (flags, load.json) wins; what they leave
out is chosen here, and a choice is never one that cannot load: when the weights alone do not
fit, loading is refused with what to do instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.core.gguf_file import GGUFSummary
from llamadesk.app.core.machine import MachineFacts
from llamadesk.app.core.memory_budget import (
    DEFAULT_KV_TYPE,
    KV_CACHE_TYPES,
    attention_scratch_per_token,
    kv_bytes_per_token,
    kv_cache_bytes,
    ram_reserve,
    vram_reserve,
)
from llamadesk.app.core.value_ranges import THREADS
from llamadesk.app.engine.batch_invariance import UNTILED_ROWS
from llamadesk.app.engine.devices import BackendDevice
from llamadesk.app.engine.types import ActiveSettings, LoadSettings

# A chosen (not requested) context uses at most this share of the memory left after weights, so
# the default never pushes a laptop into swap.
DEFAULT_KV_SHARE = 0.5
# A chosen context never exceeds this: llama.cpp allocates the whole KV cache up front, and 16k
# tokens is a long conversation. Ask for more with --ctx.
DEFAULT_CONTEXT_CAP = 16384
MIN_CONTEXT = 256
# A core counts as busy once other programs use 3/4 of it.
BUSY_ROUNDING = 0.25
CONTEXT_STEP = 256
ALL_LAYERS = 999  # llama.cpp clamps to the model's layer count (+ the output layer)

ONE_REPLY_REASON = "enough for this one reply"  # how a context sized by context_ceiling is explained
CPU_FLASH_ATTN_REASON = "off on the CPU: llama.cpp's fused kernel generates slower as the conversation grows"

# Tried, in order, when the default type would cut the context short: q8_0 halves the cache at a
# quality cost that llama.cpp's own perplexity runs show to be negligible.
FALLBACK_KV_TYPE = "q8_0"


@dataclass(frozen=True)
class OffloadTarget:
    """The GPU memory the llama.cpp build can offload layers to."""

    name: str
    free_memory: int | None  # None: the backend did not say (offload everything)
    unified_memory: bool = False  # Apple silicon: the weights sit in RAM either way


def offload_target(
    gpu_offload: bool, devices: Sequence[BackendDevice] = (), machine: MachineFacts | None = None
) -> OffloadTarget | None:
    """What the build can offload to: its GPU devices' free memory, summed; None for CPU builds.

    RPC servers count as GPUs (llama.cpp treats them so); Apple GPUs are unified memory.
    """
    if not gpu_offload:
        return None
    gpus = [d for d in devices if d.is_gpu]
    unified = any(g.unified_memory for g in (machine.gpus if machine else ()))
    if not gpus:
        # Devices listed but none a GPU: an RPC-capable CPU build with no server added.
        return None if devices else OffloadTarget("GPU", None, unified)
    names = ", ".join(sorted({d.description or d.name for d in gpus}))
    local = [d for d in gpus if not d.name.startswith("RPC")]
    unified = (unified and bool(local)) or any(d.kind == "igpu" or d.name.startswith("Metal") for d in local)
    return OffloadTarget(names, sum(d.free_memory for d in gpus), unified)


@dataclass(frozen=True)
class _Placement:
    """Where the weights go and how much room each side has left for the KV cache."""

    gpu_layers: int  # 0..n_layers (all layers means the output layer goes too)
    ram_left: int  # RAM after CPU-side weights and the reserve
    vram_left: int | None  # GPU memory after GPU-side weights and the reserve; None: unknown
    kv_layers_in_ram: int  # layers whose KV cache is in RAM
    kv_layers_in_vram: int


def _place(summary: GGUFSummary, machine: MachineFacts, target: OffloadTarget | None, gpu_layers: int) -> _Placement:
    n_layers = max(1, summary.n_layers)
    gpu_layers = max(0, min(gpu_layers, n_layers))
    offloaded = summary.layer_bytes * gpu_layers
    # The embeddings always stay in RAM; the output layer follows the last layer to the GPU, so
    # count the non-layer tensors on both sides (a small, safe overestimate).
    non_layer = max(0, summary.tensor_bytes - summary.layer_bytes * n_layers)
    unified = target is not None and target.unified_memory
    in_ram = summary.tensor_bytes if unified else summary.tensor_bytes - offloaded
    ram_left = machine.available_ram - in_ram - ram_reserve(machine)
    vram_left = None
    if target is not None and target.free_memory is not None and gpu_layers:
        vram_left = target.free_memory - vram_reserve(target.free_memory) - offloaded - non_layer
    # Offloaded layers keep their KV cache on the GPU; with unified memory that is RAM too.
    kv_in_ram = n_layers if unified else n_layers - gpu_layers
    return _Placement(gpu_layers, int(ram_left), None if vram_left is None else int(vram_left), kv_in_ram, gpu_layers)


def _context_limit(
    summary: GGUFSummary, placement: _Placement, kv_type: str, ram_share: float, scratch_per_token: int = 0
) -> int:
    """The largest context whose KV cache (and, without flash attention, attention scratch) fits `placement`."""
    per_layer = kv_bytes_per_token(summary, kv_type) / max(1, summary.n_layers)
    limits = []
    if placement.kv_layers_in_ram:
        per_token = per_layer * placement.kv_layers_in_ram + scratch_per_token
        limits.append(max(0, placement.ram_left) * ram_share / per_token)
    if placement.kv_layers_in_vram and placement.vram_left is not None:
        limits.append(max(0, placement.vram_left) / (per_layer * placement.kv_layers_in_vram))
    return int(min(limits)) if limits else 1 << 30


def _weights_do_not_fit(summary: GGUFSummary, machine: MachineFacts, placement: _Placement) -> LlamadeskError:
    reserve = ram_reserve(machine)
    in_ram = machine.available_ram - reserve - placement.ram_left
    offloaded = f" ({placement.gpu_layers} layers on the GPU)" if placement.gpu_layers else ""
    return LlamadeskError(
        f"{summary.name} needs {format_bytes(in_ram)} of RAM for its weights{offloaded} plus "
        f"{format_bytes(reserve)} kept free, but only {format_bytes(machine.available_ram)} is available "
        f"(short by {format_bytes(-placement.ram_left)}); close other programs or use a smaller "
        "quantization (llamadesk quantize)"
    )


def check_weights_fit_in_ram(summary: GGUFSummary, machine: MachineFacts) -> None:
    """LlamadeskError, as chat's, when the model's weights alone (all on the CPU) leave no RAM free."""
    placement = _place(summary, machine, None, 0)
    if placement.ram_left <= 0:
        raise _weights_do_not_fit(summary, machine, placement)


def choose_gpu_layers(
    summary: GGUFSummary, machine: MachineFacts, target: OffloadTarget | None, planned_ctx: int, kv_type: str
) -> tuple[int, str]:
    """How many layers go to the GPU, from its free memory and the model's per-layer size."""
    if target is None:
        return 0, "CPU-only build"
    n_layers = max(1, summary.n_layers)
    if target.free_memory is None:
        return ALL_LAYERS, f"the build offloads to {target.name}"
    per_layer = summary.layer_bytes + kv_bytes_per_token(summary, kv_type) / n_layers * planned_ctx
    non_layer = max(0, summary.tensor_bytes - summary.layer_bytes * n_layers)
    budget = target.free_memory - vram_reserve(target.free_memory) - non_layer
    if target.unified_memory:
        budget += non_layer  # one copy of everything, in the GPU's share of RAM
    where = f"{format_bytes(target.free_memory)} free on {target.name}"
    if per_layer * n_layers <= budget:
        return ALL_LAYERS, f"all {n_layers} layers fit in {where}"
    layers = max(0, min(n_layers, int(budget // per_layer)))
    return layers, f"{layers} of {n_layers} layers ({format_bytes(summary.layer_bytes)} each) fit in {where}"


def choose_threads(machine: MachineFacts, requested: int | None) -> tuple[int, str]:
    """One thread per performance core (or physical core): what llama.cpp runs fastest with."""
    if requested is not None:
        # Every path to llama.cpp passes here (flags, load.json, eval, imatrix, rpc-server): ggml
        # crashes past its thread table, so the range is checked where the number is used too.
        return int(THREADS.check(requested, "--threads")), "requested"
    if machine.performance_cores:
        # Generation waits for the slowest thread: efficiency cores hold the others back.
        cores, why = machine.performance_cores, f"one per performance core (of {machine.physical_cores} cores)"
    else:
        # Generation is memory-bound and hyper-threads share one core's units.
        cores, why = machine.physical_cores, "one per physical core"
    busy = int((machine.busy_cores or 0) + BUSY_ROUNDING)
    if busy and cores > 1:
        # llama.cpp's threads meet at a barrier after every operation, so one thread waiting for a
        # core that another program holds stalls them all: on a 2-core machine kept busy by other
        # work, 2 threads generated 10x slower than 1 (bench/RESULTS.md, "threads").
        free = max(1, cores - busy)
        return free, f"{why}, less {cores - free} kept busy by other programs right now"
    return cores, why


def has_sliding_window(summary: GGUFSummary) -> bool:
    """Whether some of the model's layers attend only to a window of recent tokens (Gemma 2 and 3)."""
    window = summary.metadata.get(f"{summary.architecture}.attention.sliding_window")
    return isinstance(window, int) and not isinstance(window, bool) and window > 0


def reply_context(tokens: int) -> int:
    """The context for one reply of at most `tokens` in all: whole steps of CONTEXT_STEP cells."""
    return -(-max(tokens, MIN_CONTEXT) // CONTEXT_STEP) * CONTEXT_STEP


def _attention_candidates(
    requested: LoadSettings, cpu_only: bool, quantized_kv: bool, sliding_window: bool
) -> list[tuple[bool, str]]:
    """(flash attention, KV cache type) pairs to try in order; the first whose context fits wins, else the last.

    On the CPU, flash attention off comes first for a model whose every layer attends over the
    whole context: llama.cpp's fused kernel walks the cache cell by cell for every generated
    token, and generation slows with the conversation's length (SmolLM2 2.2x slower after 1,024
    tokens, 2.9x after 3,000; bench/RESULTS.md "flash attention"), where the plain path multiplies
    the cache as matrices. Without it, prompt steps need an n_batch x context scratch per attention
    head, so when that would cut the context short the kernel goes back on (and with it the q8_0
    cache fallback, which needs it). A model with sliding-window layers keeps it: most of its
    layers attend to a short window, and there the fused kernel measured faster (Gemma 3 270M,
    4-7% at every depth). On a GPU the fused kernel is the fast path. Batch-invariant decoding
    needs it too: its kernel computes each query on its own, where the plain path's products
    take other routes for other numbers of queries (batch_invariance.py).
    """
    if requested.flash_attn is not None:
        attention = [requested.flash_attn]
    elif quantized_kv or not cpu_only or sliding_window or requested.batch_invariant:
        attention = [True]
    else:
        attention = [False, True]
    candidates = []
    for flash_attn in attention:
        if requested.kv_cache_type:
            candidates.append((flash_attn, requested.kv_cache_type))
        else:
            kv_types = [DEFAULT_KV_TYPE, FALLBACK_KV_TYPE] if flash_attn else [DEFAULT_KV_TYPE]
            candidates += [(flash_attn, kv_type) for kv_type in kv_types]
    return candidates


def choose_settings(
    summary: GGUFSummary,
    machine: MachineFacts,
    gpu_offload: bool | OffloadTarget | None,
    requested: LoadSettings,
) -> ActiveSettings:
    """Fill every unset field of `requested` with what fits this machine and this model.

    `gpu_offload` is the GPU the build can use (an OffloadTarget), True for "a GPU of unknown
    size" or False/None for a CPU-only build. Raises BadInputError for a request that cannot
    fit and LlamadeskError when the model's weights alone do not fit.
    """
    target = (OffloadTarget("GPU", None) if gpu_offload is True else gpu_offload) or None
    reasons: dict[str, str] = {}
    n_threads, reasons["n_threads"] = choose_threads(machine, requested.n_threads)

    if requested.kv_cache_type is not None and requested.kv_cache_type not in KV_CACHE_TYPES:
        raise BadInputError(
            f"unknown KV cache type {requested.kv_cache_type!r}; use one of {', '.join(KV_CACHE_TYPES)}"
        )
    quantized_kv = requested.kv_cache_type not in (None, "f32", "f16", "bf16")
    if quantized_kv and requested.flash_attn is False:
        raise BadInputError("a quantized KV cache needs flash attention; drop --flash-attn off or use --kv-type f16")

    trained = summary.context_length or 4096
    wanted = requested.n_ctx if requested.n_ctx is not None else min(trained, DEFAULT_CONTEXT_CAP)
    enough = None  # the context a known amount of work needs, when that is less than the default
    if requested.n_ctx is None and requested.context_ceiling is not None:
        if reply_context(requested.context_ceiling) < wanted:
            enough = wanted = reply_context(requested.context_ceiling)
    if requested.n_ctx is not None and requested.n_ctx < 1:
        raise BadInputError(f"--ctx must be a positive number of tokens, not {requested.n_ctx}")
    cpu_only = target is None or requested.n_gpu_layers == 0
    sliding_window = has_sliding_window(summary)
    candidates = _attention_candidates(requested, cpu_only, quantized_kv, sliding_window)

    for flash_attn, kv_type in candidates:
        if requested.n_gpu_layers is not None:
            gpu_layers, gpu_reason = requested.n_gpu_layers, "requested"
        else:
            gpu_layers, gpu_reason = choose_gpu_layers(summary, machine, target, wanted, kv_type)
        placement = _place(summary, machine, target if gpu_layers else None, gpu_layers)
        if placement.ram_left <= 0:
            raise _weights_do_not_fit(summary, machine, placement)
        share = 1.0 if requested.n_ctx is not None else DEFAULT_KV_SHARE
        scratch = 0 if flash_attn else attention_scratch_per_token(summary, requested.n_batch)
        limit = _context_limit(summary, placement, kv_type, share, scratch)
        if limit >= wanted or (flash_attn, kv_type) == candidates[-1]:
            break
    if requested.flash_attn is not None:
        reasons["flash_attn"] = "requested"
    elif flash_attn and cpu_only and quantized_kv:
        reasons["flash_attn"] = "a quantized KV cache needs it"
    elif flash_attn and cpu_only and requested.batch_invariant:
        reasons["flash_attn"] = "batch-invariant decoding needs its kernel, which computes each query on its own"
    elif flash_attn and cpu_only and sliding_window:
        reasons["flash_attn"] = "most of this model's layers attend to a short window, where the fused kernel is faster"
    elif flash_attn and cpu_only:
        reasons["flash_attn"] = "on: without it the attention scratch would cut the context short"
    elif flash_attn:
        reasons["flash_attn"] = "the GPU's fused attention kernel is faster and needs less scratch memory"
    else:
        reasons["flash_attn"] = CPU_FLASH_ATTN_REASON
    reasons["n_gpu_layers"] = gpu_reason
    reasons["kv_cache_type"] = (
        "requested"
        if requested.kv_cache_type
        else (
            "full precision"
            if kv_type == DEFAULT_KV_TYPE
            else f"{kv_type} halves the KV cache, so more context fits in memory"
        )
    )

    free_text = format_bytes(max(0, placement.ram_left))
    if requested.n_ctx is not None:
        if requested.n_ctx > limit:
            raise BadInputError(
                f"a context of {requested.n_ctx} tokens needs "
                f"{format_bytes(kv_cache_bytes(summary, requested.n_ctx, kv_type))} "
                f"of {kv_type} KV cache but only {free_text} of memory is free; use --ctx {limit} or less"
            )
        n_ctx, reasons["n_ctx"] = requested.n_ctx, "requested"
    elif limit >= wanted and enough is not None:
        n_ctx, reasons["n_ctx"] = wanted, f"{ONE_REPLY_REASON}: its prompt and --max-tokens"
    elif limit >= wanted:
        n_ctx = wanted
        reasons["n_ctx"] = (
            "the model's trained context"
            if wanted == trained
            else (f"the model's {trained} capped at {DEFAULT_CONTEXT_CAP} (--ctx for more)")
        )
    else:
        n_ctx = limit // CONTEXT_STEP * CONTEXT_STEP
        if n_ctx < MIN_CONTEXT:
            raise LlamadeskError(
                f"{summary.name} fits in memory but leaves room for only {limit} tokens of context "
                f"({free_text} free after weights); close other programs or use a smaller model"
            )
        reasons["n_ctx"] = f"capped by free memory ({free_text} after weights)"

    use_mmap = requested.use_mmap
    reasons["use_mmap"] = "the OS pages weights in on demand and shares them" if use_mmap else "requested off"
    reasons["use_mlock"] = "requested" if requested.use_mlock else "off unless asked (pins the whole model in RAM)"
    n_batch = max(1, min(requested.n_batch, n_ctx))
    # Not on a GPU (other kernels), nor with flash attention turned off by request (batch_invariance.py).
    batch_invariant = requested.batch_invariant and gpu_layers == 0 and flash_attn
    if batch_invariant:  # prompts read in steps below flash attention's tiled kernel (batch_invariance.py)
        n_batch = min(n_batch, UNTILED_ROWS)
        reasons["batch_invariant"] = "a token's result does not depend on what shares its batch"
    return ActiveSettings(
        n_ctx=n_ctx,
        n_threads=n_threads,
        n_gpu_layers=gpu_layers,
        flash_attn=flash_attn,
        n_batch=n_batch,
        reasons=reasons,
        kv_cache_type=kv_type,
        use_mmap=use_mmap,
        use_mlock=requested.use_mlock,
        batch_invariant=batch_invariant,
    )
