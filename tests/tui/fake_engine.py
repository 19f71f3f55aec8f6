"""A fake model with the Engine's streaming interface, for fast UI tests (the real one is tested
beside it, end to end). Replies are scripted from the last prompt so tests can assert on them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

from llamadesk.app.engine.types import ChatMessage, GenerationDone, GenerationStats, LoadSettings, Sampling, TextPiece

CODE_REPLY = "Here you go:\n\n```python\nprint('hello')\n```\n\nDone."


def scripted_reply(prompt: str) -> list[str]:
    """The words a fake reply streams: 'long' prompts never end (until stopped)."""
    if "code" in prompt:
        return [CODE_REPLY]
    if "long" in prompt:
        return [f"word{i} " for i in range(100_000)]
    return [f"Echo: {prompt}"]


class FakeEngine:
    backend = "CPU"

    def __init__(self, name: str = "fake", n_ctx: int = 512, token_delay: float = 0.0):
        self.summary = SimpleNamespace(name=name)
        self.settings = SimpleNamespace(n_threads=2)
        self._n_ctx = n_ctx
        self.token_delay = token_delay
        self._stop = threading.Event()
        self.closed = False
        self.prompts: list[list[ChatMessage]] = []

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    def state_identity(self) -> dict[str, object]:
        """What a translation's resume sidecar records of the model (Engine.state_identity's keys)."""
        return {"model": f"/models/{self.summary.name}.gguf", "model_size": 1, "model_mtime_ns": 1, "adapters": []}

    def chat_prompt_tokens(self, messages: Sequence[ChatMessage]) -> list[int]:
        # One token per word plus a few for each message's template, like a real tokenizer's order of magnitude.
        return [0] * sum(len(m["content"].split()) + 4 for m in messages)

    def stream_chat(self, messages: Sequence[ChatMessage], sampling: Sampling = Sampling()) -> Iterator:
        self._stop.clear()
        self.prompts.append(list(messages))
        prompt_tokens = len(self.chat_prompt_tokens(messages))
        generated = 0
        reason = "end"
        for piece in scripted_reply(messages[-1]["content"]):
            if self._stop.is_set():
                reason = "stopped"
                break
            if sampling.max_tokens is not None and generated >= sampling.max_tokens:
                reason = "length"
                break
            if self.token_delay:
                time.sleep(self.token_delay)
            generated += 1
            yield TextPiece(piece)
        yield GenerationDone(
            GenerationStats(
                prompt_tokens, 0, generated, 0.05, 1000.0, 100.0, prompt_tokens + generated, self._n_ctx, reason
            )
        )

    def request_stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeLoader:
    """Loads FakeEngines and remembers every one, so tests can check that switching closes."""

    n_ctx: int = 512
    token_delay: float = 0.0
    engines: list[FakeEngine] = field(default_factory=list)
    specs: list[str] = field(default_factory=list)
    settings: list[LoadSettings] = field(default_factory=list)

    def __call__(self, spec: str, settings: LoadSettings) -> FakeEngine:
        engine = FakeEngine(spec, settings.n_ctx or self.n_ctx, self.token_delay)
        self.engines.append(engine)
        self.specs.append(spec)
        self.settings.append(settings)
        return engine
