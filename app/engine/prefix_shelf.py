"""One earlier prompt's KV cache kept aside, for a caller that alternates between two prompts.

The single-stream context holds one sequence. Document translation asks with its few-shot prompt
segment after segment, so each prompt reuses the prefix the previous one left in the cache; but
a strict retry asks with another prompt, which throws that prefix away, and the next segment
decodes it all again (7 prompts of over 128 tokens, 14% of a 40-paragraph document's time on
the Gemma 3 starter). Before a prompt that shares little with the cache, the shelf copies the
cache out (llama.cpp's per-sequence state, milliseconds); when a later prompt shares more with
the copy than with the cache, the copy goes back in and only the rest is decoded.

Opt-in (Engine.stream_tokens(..., shelve=True)): a copy of a long conversation's cache costs
memory, and a chat or a server rarely comes back to the prompt it just left.
"""

from __future__ import annotations

from collections.abc import Sequence

import llama_cpp

from llamadesk.app.engine.sequence_state import SequenceSnapshot, capture, restore
from llamadesk.app.engine.token_prefix import common_prefix

# Prompt tokens a swap must save before it is worth copying a cache (decoding 64 tokens takes
# about half a second on a small CPU; copying the state of a few hundred, a few milliseconds).
WORTH_KEEPING = 64
# A cache longer than this is not copied: the copy would cost more memory than it saves time.
MAX_SHELVED_TOKENS = 2048


class PrefixShelf:
    """Swaps sequence 0's cache with one kept copy when that serves the next prompt better."""

    def __init__(self, llama: llama_cpp.Llama):
        self._llama = llama
        self._kept: SequenceSnapshot | None = None

    @property
    def kept_tokens(self) -> int:
        return len(self._kept.tokens) if self._kept is not None else 0

    def prepare(self, prompt: Sequence[int]) -> None:
        """Before decoding `prompt`: bring back the kept cache, or keep the current one, as pays."""
        llama = self._llama
        held = common_prefix(llama.input_ids[: llama.n_tokens].tolist(), prompt)
        kept = self._kept
        if kept is not None and common_prefix(kept.tokens, prompt) >= held + WORTH_KEEPING:
            current = self._copy_if_worth(held)
            if not restore(llama, list(kept.tokens), bytearray(kept.state)):
                current = None  # the cache is empty now: the prompt is decoded afresh
            self._kept = current
        elif held < WORTH_KEEPING:
            copy = self._copy_if_worth(held)
            if copy is not None:
                self._kept = copy

    def _copy_if_worth(self, held: int) -> SequenceSnapshot | None:
        """The current cache, when the prompt about to replace it would throw much of it away."""
        n_tokens = int(self._llama.n_tokens)
        if n_tokens - held < WORTH_KEEPING or n_tokens > MAX_SHELVED_TOKENS:
            return None
        return capture(self._llama)

    def clear(self) -> None:
        self._kept = None
