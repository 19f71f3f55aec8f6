"""Message text stays text: a message that spells a special token (`<|im_end|>`) does not become one.

llama.cpp tokenizes a rendered chat prompt with its special tokens parsed, since the template's own
markup must become control tokens. Parsed alike, a message's text could close its turn and open a
system or assistant turn of its own choosing (`cat untrusted.txt | llamadesk chat` forged turns).
So a message that spells a special token is tokenized as plain text, and only the template's text
around it with special tokens parsed. Every other prompt is tokenized whole, as before, so its
tokens are exactly llama.cpp's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Tokenize = Callable[..., list[int]]  # tokenize(text, add_bos=..., special=...)
# Characters every special token of the supported vocabularies starts with (<|im_end|>, <s>,
# <start_of_turn>, [INST]): text without them needs no second look.
SPECIAL_OPENERS = ("<", "[")


def spells_special_token(text: str, tokenize: Tokenize) -> bool:
    """Whether parsing special tokens changes how `text` is tokenized."""
    if not any(opener in text for opener in SPECIAL_OPENERS):
        return False
    return tokenize(text, add_bos=False, special=True) != tokenize(text, add_bos=False, special=False)


# Contents already looked at, per engine: a conversation's earlier messages come back with every
# turn (and several times a turn while old turns are dropped), and looking tokenizes them twice.
MEMO_LIMIT = 4096


def prompt_tokens(
    prompt: str, contents: Sequence[str], tokenize: Tokenize, memo: dict[str, bool] | None = None
) -> list[int]:
    """The tokens of a rendered `prompt`, in which each of `contents` (the messages' texts, in
    order) that spells a special token is tokenized as plain text. `memo` keeps the answers."""
    memo = {} if memo is None else memo
    spelled = []
    for content in contents:
        if content not in memo:
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            memo[content] = bool(content) and spells_special_token(content, tokenize)
        if memo[content]:
            spelled.append(content)
    if not spelled:
        return tokenize(prompt, add_bos=False, special=True)
    tokens: list[int] = []
    cursor = 0
    for content in spelled:
        at = prompt.find(content, cursor)
        if at < 0:
            continue  # the template changed the text as it rendered it: left as rendered
        tokens += tokenize(prompt[cursor:at], add_bos=False, special=True)
        tokens += tokenize(content, add_bos=False, special=False)
        cursor = at + len(content)
    return tokens + tokenize(prompt[cursor:], add_bos=False, special=True)
