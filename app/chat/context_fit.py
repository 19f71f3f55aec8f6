"""What the model sees of a conversation: prompt building and fitting it into the context.

Plain functions, tested without a terminal or a model. A conversation may grow past the model's
context (n_ctx); then the oldest turns are dropped from what the model sees, the system prompt
stays, and the caller learns the index of the first message the model still remembers, so the
UI can mark it. Nothing here fails because a conversation is too long; only a system prompt
that leaves no room for the newest message is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llamadesk.app.core.errors import PromptTooLong
from llamadesk.app.engine.types import ChatMessage

# Tokens kept free for the reply when the conversation does not say how long replies may be.
DEFAULT_REPLY_RESERVE_SHARE = 0.25
# Once turns must be dropped, drop enough to leave this share of the context free, so the next
# few turns fit without dropping again (each drop changes the prompt's start and costs a full
# re-evaluation instead of reusing the KV cache).
DROP_SLACK_SHARE = 0.25
TRUNCATION_MARK = "…"
# Characters a token holds in ordinary text (about 4 in English): where the search for how much
# of an over-long message fits starts.
CHARS_PER_TOKEN_GUESS = 4
# Far more characters than any text's tokens hold: a conversation longer than this many per token
# of the budget cannot fit whole, so it is not tokenized whole to find out.
CHARS_PER_TOKEN_MOST = 16

TokenCounter = Callable[[Sequence[ChatMessage]], int]


@dataclass(frozen=True)
class FittedPrompt:
    """The messages to send, and where the model's memory begins in the conversation."""

    messages: list[ChatMessage]
    memory_start: int  # index into the conversation (system prompt excluded) of the first kept message
    prompt_tokens: int
    truncated_last: bool = False  # the newest message alone was too long and was cut from the front

    @property
    def cut_note(self) -> str | None:
        """What to tell the user when the newest message was cut to fit (None when it was not)."""
        if not self.truncated_last:
            return None
        return (
            "your message is longer than the context holds: the model sees only its end "
            "(a larger --ctx, or a shorter message, gives it all)"
        )


def build_messages(system_prompt: str, turns: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The system prompt (when there is one) followed by the turns."""
    head: list[ChatMessage] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return head + list(turns)


def reply_reserve(n_ctx: int, max_tokens: int | None) -> int:
    """Tokens to keep free for the reply: the reply limit, capped at half the context."""
    wanted = max_tokens if max_tokens is not None else int(n_ctx * DEFAULT_REPLY_RESERVE_SHARE)
    return max(1, min(wanted, n_ctx // 2))


def turn_starts(turns: Sequence[ChatMessage]) -> list[int]:
    """Indices where the model may start reading: user messages (never a reply without its question)."""
    starts = [i for i, turn in enumerate(turns) if turn["role"] == "user"]
    return starts or [0]


def fit_context(
    system_prompt: str,
    turns: Sequence[ChatMessage],
    count_tokens: TokenCounter,
    n_ctx: int,
    max_tokens: int | None = None,
    keep_from: int = 0,
) -> FittedPrompt:
    """Drop the oldest turns until the prompt leaves room for the reply.

    `keep_from` is the memory start of the previous reply; it is kept while it still fits (the
    model's memory only moves forward, and in jumps, so the KV cache is reused between turns),
    unless the whole conversation fits again: the context grew (a larger --ctx on a conversation
    that had outgrown a smaller one), and the turns dropped then are the model's again.
    """
    budget = n_ctx - reply_reserve(n_ctx, max_tokens)

    def tokens_from(start: int) -> int:
        return count_tokens(build_messages(system_prompt, turns[start:]))

    if keep_from > 0 and sum(len(turn["content"]) for turn in turns) <= budget * CHARS_PER_TOKEN_MOST:
        used = tokens_from(0)
        if used <= budget:
            return FittedPrompt(build_messages(system_prompt, turns), 0, used)

    starts = [s for s in turn_starts(turns) if s >= keep_from] or [turn_starts(turns)[-1]]
    first = starts[0]
    used = tokens_from(first)
    if used <= budget:
        return FittedPrompt(build_messages(system_prompt, turns[first:]), first, used)
    # Token counts only fall as the start moves forward: binary search the earliest start that
    # leaves the slack free.
    target = budget - int(n_ctx * DROP_SLACK_SHARE)
    lo, hi = 0, len(starts) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if tokens_from(starts[mid]) <= target:
            hi = mid
        else:
            lo = mid + 1
    start = starts[lo]
    used = tokens_from(start)
    if used <= budget:
        return FittedPrompt(build_messages(system_prompt, turns[start:]), start, used)
    return _truncate_newest(system_prompt, turns[start:], start, count_tokens, budget, n_ctx)


def _truncate_newest(
    system_prompt: str,
    turns: Sequence[ChatMessage],
    start: int,
    count_tokens: TokenCounter,
    budget: int,
    n_ctx: int,
) -> FittedPrompt:
    """The newest turn alone is too long: keep only it, cut from its front (its end is the question)."""
    last = turns[-1]
    index = start + len(turns) - 1
    text = last["content"]

    def messages_keeping(n_chars: int) -> list[ChatMessage]:
        kept = TRUNCATION_MARK + text[len(text) - n_chars :] if n_chars < len(text) else text
        return build_messages(system_prompt, [{"role": last["role"], "content": kept}])

    def fits(n_chars: int) -> bool:
        return count_tokens(messages_keeping(n_chars)) <= budget

    # The search tokenizes only the end that can matter: the first length (from a few characters a
    # token, doubling) that does not fit bounds it. Searching the whole text tokenized all of a
    # 21 MB paste some 25 times, minutes before the first word.
    lo, hi = 0, min(len(text), max(1, budget) * CHARS_PER_TOKEN_GUESS)
    while hi < len(text) and fits(hi):
        lo, hi = hi, min(len(text), hi * 2)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    if lo == 0:
        # Nothing of the message fits beside the system prompt and the reply's room: answering the
        # system prompt alone would be an answer to a question never seen.
        raise PromptTooLong(
            f"the system prompt leaves no room for your message: the context holds {n_ctx:,} tokens, "
            f"{n_ctx - budget:,} of them kept for the reply; shorten the system prompt, or give a larger "
            "context (--ctx)"
        )
    messages = messages_keeping(lo)
    return FittedPrompt(messages, index, count_tokens(messages), truncated_last=True)
