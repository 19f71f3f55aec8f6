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


# Renders the conversation with some messages' texts replaced: {index in `contents`: new text}.
RenderReplaced = Callable[[dict[int, str]], str]


def prompt_tokens(
    prompt: str,
    contents: Sequence[str],
    tokenize: Tokenize,
    memo: dict[str, bool] | None = None,
    render_replaced: RenderReplaced | None = None,
) -> list[int]:
    """The tokens of a rendered `prompt`, in which each of `contents` (the messages' texts, in
    order) that spells a special token is tokenized as plain text. `memo` keeps the answers.

    Where the message sits is found by rendering again with a marker in its place
    (`render_replaced`): looking for its text in the prompt found the template's own markup
    first when a message was just `<|im_end|>`, so the system turn's end became text and the
    message's stayed a token. Without a renderer, or when the template does not put the marker
    through unchanged, the text is looked for in order, as a fallback.
    """
    memo = {} if memo is None else memo
    spelled = []
    for index, content in enumerate(contents):
        if content not in memo:
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            memo[content] = bool(content) and spells_special_token(content, tokenize)
        if memo[content]:
            spelled.append((index, content))
    if not spelled:
        return tokenize(prompt, add_bos=False, special=True)
    pieces = _pieces_by_markers(prompt, spelled, render_replaced) or _pieces_by_search(prompt, spelled)
    tokens: list[int] = []
    for text, is_markup in pieces:
        tokens += tokenize(text, add_bos=False, special=is_markup)
    return tokens


def _marker(index: int) -> str:
    # Private-use characters: no vocabulary has special tokens made of them, no template rewrites them.
    return f"\ue000llamadesk-message-{index}\ue001"


def _pieces_by_markers(
    prompt: str, spelled: list[tuple[int, str]], render_replaced: RenderReplaced | None
) -> list[tuple[str, bool]] | None:
    """(text, is template markup) pieces of `prompt`, from a render with markers for the spelled
    messages; None when that cannot be trusted (no renderer, a marker missing or doubled, or the
    messages put back in the markers' places not giving `prompt` again)."""
    if render_replaced is None:
        return None
    marked = render_replaced({index: _marker(index) for index, _ in spelled})
    pieces: list[tuple[str, bool]] = []
    cursor = 0
    for index, content in spelled:
        marker = _marker(index)
        at = marked.find(marker, cursor)
        if at < 0 or marked.find(marker, at + len(marker)) >= 0:
            return None
        pieces += [(marked[cursor:at], True), (content, False)]
        cursor = at + len(marker)
    pieces.append((marked[cursor:], True))
    return pieces if "".join(text for text, _ in pieces) == prompt else None


def _pieces_by_search(prompt: str, spelled: list[tuple[int, str]]) -> list[tuple[str, bool]]:
    pieces: list[tuple[str, bool]] = []
    cursor = 0
    for _, content in spelled:
        at = prompt.find(content, cursor)
        if at < 0:
            continue  # the template changed the text as it rendered it: left as rendered
        pieces += [(prompt[cursor:at], True), (content, False)]
        cursor = at + len(content)
    pieces.append((prompt[cursor:], True))
    return pieces
