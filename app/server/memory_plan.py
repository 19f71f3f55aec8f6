"""The server's memory budget: what a model takes loaded, and which models to close to make room.

`serve --memory-budget 3G` keeps models in memory only while together they fit the budget. Before
a model loads, its need is core.memory_budget's estimate (weights, KV cache, compute and output
buffers) for the context it will get; once loaded, the estimate is redone with the context and KV
type the engine actually chose (which may be smaller). To make room, the least recently used
models are closed first; a model that alone needs more than the budget is refused with a message
saying by how much, and nothing is closed for it.

With `serve --parallel N` a model also has the batched decoder's context (as large as its own):
`contexts=2` counts its KV cache and buffers twice and its weights once.
"""

from __future__ import annotations

from pathlib import Path

from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.gguf_file import GGUFSummary
from llamadesk.app.core.memory_budget import DEFAULT_KV_TYPE, estimate_memory
from llamadesk.app.engine.types import LoadSettings


def _need(summary: GGUFSummary, n_ctx: int, n_batch: int, kv_type: str, flash_attn: bool, contexts: int = 1) -> int:
    estimate = estimate_memory(summary, summary.n_vocab, summary.tensor_bytes, n_ctx, n_batch, kv_type, flash_attn)
    return estimate.weights + contexts * (estimate.total - estimate.weights)


def memory_before_load(path: Path, settings: LoadSettings, contexts: int = 1) -> int:
    """What the model will take with `settings`: an unset context is the largest the engine would
    choose (the trained context, capped), an unset KV type full precision, so this is an upper bound."""
    from llamadesk.app.engine.fitted_settings import DEFAULT_CONTEXT_CAP
    from llamadesk.app.library.catalog import inspect_model

    summary = inspect_model(path)
    n_ctx = settings.n_ctx or min(summary.context_length or 4096, DEFAULT_CONTEXT_CAP)
    kv_type = settings.kv_cache_type or DEFAULT_KV_TYPE
    return _need(summary, n_ctx, settings.n_batch, kv_type, bool(settings.flash_attn), contexts)


def memory_when_loaded(engine: object, estimate: int, contexts: int = 1) -> int:
    """What a loaded engine takes, from the settings it chose; `estimate` for an engine that does not say."""
    summary, settings = getattr(engine, "summary", None), getattr(engine, "settings", None)
    if not isinstance(summary, GGUFSummary) or settings is None:
        return estimate
    return _need(summary, settings.n_ctx, settings.n_batch, settings.kv_cache_type, settings.flash_attn, contexts)


def models_to_close(loaded: list[tuple[str, int]], need: int, budget: int | None, max_models: int) -> list[str]:
    """Which of the `loaded` models (name, bytes; least recently used first) to close so that one
    more model needing `need` bytes fits both `max_models` and the budget."""
    closing = []
    remaining = list(loaded)
    while remaining and (
        len(remaining) >= max_models or (budget is not None and sum(n for _, n in remaining) + need > budget)
    ):
        name, _ = remaining.pop(0)
        closing.append(name)
    return closing


def too_large_message(name: str, need: int, budget: int) -> str:
    return (
        f"the model '{name}' needs about {format_bytes(need)} loaded, more than the server's memory budget of "
        f"{format_bytes(budget)} (--memory-budget); use a smaller model or context (--ctx), or a larger budget"
    )


def parse_memory_size(text: str) -> int:
    """'3G', '1.5GiB', '800M', '512MB' or a number of bytes -> bytes (binary units: 1G = 1024**3)."""
    units = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = (cleaned[:-1], cleaned[-1]) if cleaned[-1:] in units and cleaned[-1:] else (cleaned, "")
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"{text!r} is not a size like 3G, 800M or 1.5GiB") from None
    if not value > 0 or value * units[unit] > 1 << 60:
        raise ValueError(f"{text!r} is not a size like 3G, 800M or 1.5GiB")
    return int(value * units[unit])
