"""The typed values that cross the engine's boundary: settings in, events and stats out.

The CLI and the UI see only these; nothing outside the engine imports llama_cpp.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypedDict


class ChatMessage(TypedDict):
    """One turn of a conversation, as chat templates expect it."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class LoadSettings:
    """How a model is loaded. None means: choose what fits this machine (runtime_settings)."""

    n_ctx: int | None = None
    n_threads: int | None = None
    n_gpu_layers: int | None = None
    flash_attn: bool | None = None
    n_batch: int = 512
    use_mlock: bool = False
    kv_cache_type: str | None = None  # "f16", "q8_0", ...: see runtime_settings.KV_CACHE_TYPES
    use_mmap: bool = True
    rpc_servers: str | None = None  # "host:port[,host:port]": llama.cpp RPC servers to offload to
    # LoRA adapters (GGUF) applied at run time, each with its scale (1 as trained, 0 off).
    lora: tuple[tuple[str, float], ...] = ()
    # On the CPU: kernels whose result for a token does not depend on what else shares its batch,
    # so a batched decoder (translate --parallel) gives what decoding alone gives (batch_invariance.py).
    batch_invariant: bool = False
    # The most tokens this engine will ever hold (a one-shot reply: its prompt and --max-tokens),
    # when known: a chosen context is no larger. Less KV cache to allocate and touch, and without
    # flash attention a shorter transposed V cache to stride through per token. --ctx still wins.
    context_ceiling: int | None = None


@dataclass(frozen=True)
class OneReply:
    """The only work a load is for: one reply of at most `max_tokens` to `messages` (chat PROMPT)."""

    messages: tuple[ChatMessage, ...]
    max_tokens: int


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen. temperature 0 is greedy and fully reproducible."""

    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    seed: int | None = None
    max_tokens: int | None = None
    # Report each token's log-probability (TextPiece.logprob): a log-softmax over the vocabulary
    # per token (~1 ms for a 262k vocabulary), so only when asked, as translation's confidence does.
    logprobs: bool = False
    # A GBNF grammar the reply must follow (json_grammar.py writes them for JSON output); None is free text.
    grammar: str | None = None
    # Greedy replies without logprobs: guess runs of tokens from the context and check them in one
    # decode (engine/prompt_lookup.py); the same tokens, faster where the reply quotes its input.
    prompt_lookup: bool = False


StopReason = Literal["end", "length", "stopped", "context"]


@dataclass(frozen=True)
class GenerationStats:
    """What one reply cost. Times are seconds; rates are tokens per second."""

    prompt_tokens: int
    cached_prompt_tokens: int
    generated_tokens: int
    time_to_first_token: float
    prompt_tokens_per_second: float
    generated_tokens_per_second: float
    context_tokens: int
    n_ctx: int
    stop_reason: StopReason


def generation_rate(generated: int, ended_on_eog: bool, seconds: float) -> float:
    """Tokens/s after the first token, from `generated` shown tokens in `seconds` since the first.

    Each token after the first costs a decode of the one before it; a reply the model ended also
    decoded its last shown token to pick the end-of-generation token, which is sampled, not
    shown. Counting only the shown tokens understated a 50-token reply's rate by 2% against
    llama.cpp's own count of evaluated tokens (bench/RESULTS.md "chat path").
    """
    produced = generated - 1 + (1 if ended_on_eog and generated > 0 else 0)
    return produced / seconds if produced > 0 and seconds > 0 else 0.0


@dataclass(frozen=True)
class TextPiece:
    """A piece of the reply, always whole UTF-8 characters."""

    text: str
    # With Sampling.logprobs: the summed natural-log probabilities of the tokens that made this
    # piece (a character split across tokens is one piece), and how many tokens that was.
    logprob: float | None = None
    tokens: int = 1


@dataclass(frozen=True)
class GenerationDone:
    """The reply ended; why and at what cost is in `stats`."""

    stats: GenerationStats


StreamEvent = TextPiece | GenerationDone


@dataclass(frozen=True)
class ActiveSettings:
    """The settings a loaded model actually runs with, and why each was chosen."""

    n_ctx: int
    n_threads: int
    n_gpu_layers: int
    flash_attn: bool
    n_batch: int
    reasons: dict[str, str] = field(default_factory=dict)
    kv_cache_type: str = "f16"
    use_mmap: bool = True
    use_mlock: bool = False
    batch_invariant: bool = False  # see LoadSettings.batch_invariant


@dataclass(frozen=True)
class BenchResult:
    """Throughput the way llama-bench reports it: mean and spread over repetitions."""

    test: str  # "pp512", "tg128", or "tg128 @ d4096" after 4,096 tokens (llama-bench's names)
    n_tokens: int
    tokens_per_second_mean: float
    tokens_per_second_stdev: float
    samples: list[float]
