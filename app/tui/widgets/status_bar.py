"""The status line: backend, threads, speed and first-token time of the last reply, the prompt tokens
it reused (from memory or the prompt cache on disk), context use."""

from __future__ import annotations

from dataclasses import dataclass

from textual.widgets import Static

GAUGE_WIDTH = 8


@dataclass(frozen=True)
class StatusFacts:
    """Everything the status line shows; None where it is not known yet."""

    model: str | None = None
    adapters: tuple[str, ...] = ()  # LoRA adapters applied to the model
    backend: str | None = None
    threads: int | None = None
    tokens_per_second: float | None = None
    time_to_first_token: float | None = None
    context_tokens: int = 0
    n_ctx: int | None = None
    memory_start: int = 0  # messages before this index are no longer seen by the model
    cached_tokens: int = 0  # prompt tokens of the last reply that were not decoded again
    cache_from_disk: bool = False  # ...because they were loaded from the prompt cache on disk
    activity: str = ""  # "loading smollm2", "replying", "stopped"...


def context_gauge(used: int, n_ctx: int, width: int = GAUGE_WIDTH) -> str:
    """'▰▰▰▱▱▱▱▱ 312/8192': how full the context is."""
    filled = min(width, round(width * used / n_ctx)) if n_ctx > 0 else 0
    return "▰" * filled + "▱" * (width - filled) + f" {used}/{n_ctx}"


def status_text(facts: StatusFacts) -> str:
    """The status line, most important first so a narrow terminal cuts the least useful part."""
    parts = []
    if facts.activity:
        parts.append(facts.activity)
    if facts.model:
        parts.append(facts.model + "".join(f" + {name}" for name in facts.adapters))
    if facts.tokens_per_second is not None:
        parts.append(f"{facts.tokens_per_second:.1f} tok/s")
    if facts.time_to_first_token is not None:
        parts.append(f"TTFT {facts.time_to_first_token * 1000:.0f} ms")
    if facts.cached_tokens:
        parts.append(f"{facts.cached_tokens} cached" + (" from disk" if facts.cache_from_disk else ""))
    if facts.n_ctx:
        parts.append("ctx " + context_gauge(facts.context_tokens, facts.n_ctx))
    if facts.memory_start:
        parts.append(f"forgot {facts.memory_start} msgs")
    if facts.backend:
        parts.append(facts.backend + (f" ×{facts.threads}" if facts.threads else ""))
    return " │ ".join(parts)


class StatusBar(Static):
    """Shows StatusFacts; the screen replaces them as things change."""

    def __init__(self, **kwargs) -> None:
        super().__init__(markup=False, **kwargs)  # plain text: a model's file name may hold "[...]"

    def show(self, facts: StatusFacts) -> None:
        self.update(status_text(facts))
