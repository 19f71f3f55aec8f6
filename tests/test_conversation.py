"""Fitting a conversation into the context: oldest turns go, the system prompt stays."""

from __future__ import annotations

from llamadesk.app.chat.context_fit import (
    DROP_SLACK_SHARE,
    TRUNCATION_MARK,
    build_messages,
    fit_context,
    reply_reserve,
    turn_starts,
)


def count_words(messages):
    """A stand-in tokenizer: one token per word plus 4 per message for the template."""
    return sum(len(m["content"].split()) + 4 for m in messages)


def conversation(n_turns: int, words: int = 10):
    turns = []
    for i in range(n_turns):
        turns.append({"role": "user", "content": " ".join([f"q{i}"] * words)})
        turns.append({"role": "assistant", "content": " ".join([f"a{i}"] * words)})
    return turns


def test_a_short_conversation_is_sent_whole():
    turns = conversation(2)
    fitted = fit_context("Be nice.", turns, count_words, n_ctx=1000, max_tokens=100)
    assert fitted.memory_start == 0
    assert fitted.messages == build_messages("Be nice.", turns)
    assert fitted.prompt_tokens == count_words(fitted.messages)


def test_a_long_conversation_drops_the_oldest_turns_and_keeps_the_system_prompt():
    turns = conversation(50) + [{"role": "user", "content": "last question"}]
    n_ctx, max_tokens = 400, 100
    fitted = fit_context("Be nice.", turns, count_words, n_ctx=n_ctx, max_tokens=max_tokens)
    assert fitted.messages[0] == {"role": "system", "content": "Be nice."}
    assert fitted.messages[-1] == {"role": "user", "content": "last question"}
    assert fitted.messages[1:] == turns[fitted.memory_start :]
    assert turns[fitted.memory_start]["role"] == "user"  # memory never begins with a reply
    assert fitted.prompt_tokens <= n_ctx - max_tokens - int(n_ctx * DROP_SLACK_SHARE)
    # ...and it dropped no more than it had to: one more turn would not leave the slack.
    earlier = fitted.memory_start - 2
    assert count_words(build_messages("Be nice.", turns[earlier:])) > n_ctx - max_tokens - int(n_ctx * DROP_SLACK_SHARE)


def test_memory_start_stays_put_while_the_conversation_still_fits_then_jumps():
    turns = conversation(50)
    n_ctx = 400
    first = fit_context("", turns, count_words, n_ctx=n_ctx, max_tokens=50)
    grown = turns + conversation(1)
    second = fit_context("", grown, count_words, n_ctx=n_ctx, max_tokens=50, keep_from=first.memory_start)
    assert second.memory_start == first.memory_start  # the slack absorbed the new turn: KV cache reused
    much_longer = turns + conversation(20)
    third = fit_context("", much_longer, count_words, n_ctx=n_ctx, max_tokens=50, keep_from=first.memory_start)
    assert third.memory_start > first.memory_start
    assert third.prompt_tokens <= n_ctx - 50


def test_a_single_message_longer_than_the_context_is_cut_from_the_front_not_refused():
    huge = " ".join(f"w{i}" for i in range(5000)) + " what is this?"
    turns = conversation(3) + [{"role": "user", "content": huge}]
    fitted = fit_context("sys", turns, count_words, n_ctx=512, max_tokens=64)
    assert fitted.truncated_last
    assert fitted.memory_start == len(turns) - 1
    assert fitted.prompt_tokens <= 512 - 64
    assert fitted.messages[0]["content"] == "sys"
    kept = fitted.messages[-1]["content"]
    assert kept.startswith(TRUNCATION_MARK) and kept.endswith("what is this?")


def test_reply_reserve_is_the_limit_capped_at_half_the_context():
    assert reply_reserve(4096, 256) == 256
    assert reply_reserve(4096, 100_000) == 2048
    assert reply_reserve(4096, None) == 1024


def test_turn_starts_are_user_messages():
    turns = [
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
    ]
    assert turn_starts(turns) == [1]
