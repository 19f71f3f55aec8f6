"""Fitting a conversation into the context: oldest turns go, the system prompt stays."""

from __future__ import annotations

import pytest

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


def test_a_larger_context_gives_back_the_turns_a_smaller_one_dropped():
    # `chat --continue --ctx 4096` on a conversation that outgrew --ctx 256: the stored memory
    # start kept the first turns out though all of them fit, and nothing said so.
    turns = conversation(20)
    small = fit_context("", turns, count_words, n_ctx=400, max_tokens=50)
    assert small.memory_start > 0
    large = fit_context("", turns, count_words, n_ctx=4000, max_tokens=50, keep_from=small.memory_start)
    assert large.memory_start == 0 and large.messages == turns
    counted = []
    fit_context("", conversation(200), lambda m: counted.append(m) or count_words(m), 400, 50, keep_from=10)
    assert all(len(m) < 400 for m in counted), "a conversation that cannot fit whole is not tokenized whole"


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


def test_cutting_a_huge_message_tokenizes_only_the_end_that_can_matter():
    # The search tokenized the whole message each step: a 21 MB paste took minutes to fit.
    huge = "word " * 2_000_000 + "what is this?"
    seen: list[int] = []

    def counting(messages) -> int:
        seen.append(sum(len(m["content"]) for m in messages))
        return count_words(messages)

    fitted = fit_context("sys", [{"role": "user", "content": huge}], counting, n_ctx=512, max_tokens=64)
    assert fitted.truncated_last and fitted.messages[-1]["content"].endswith("what is this?")
    # Two counts of the whole conversation (is it too long; from which turn), then only its end.
    assert len([n for n in seen if n > 100_000]) == 2


def test_a_system_prompt_that_leaves_no_room_for_the_message_is_refused_not_answered():
    # The message was cut to nothing and the model answered the system prompt alone.
    from llamadesk.app.core.errors import PromptTooLong

    system = " ".join(["rule"] * 446)  # 450 tokens of the 448 the context leaves beside a 64-token reply
    with pytest.raises(PromptTooLong, match="leaves no room for your message"):
        fit_context(system, [{"role": "user", "content": "What is the capital of France?"}], count_words, 512, 64)


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
