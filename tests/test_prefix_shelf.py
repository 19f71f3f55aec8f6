"""engine/prefix_shelf.py on the real SmolLM2: a prompt's cache kept aside while another prompt runs."""

from __future__ import annotations

import pytest

from llamadesk.app.engine.prefix_shelf import WORTH_KEEPING
from llamadesk.app.engine.types import GenerationDone, Sampling, TextPiece

GREEDY = Sampling(temperature=0.0, top_k=1, seed=0, max_tokens=8)
EXAMPLES = "".join(
    f"English: Sentence number {n} is short.\nFrench: La phrase numéro {n} est courte.\n\n" for n in range(12)
)


def reply(engine, tokens, shelve=True):
    events = list(engine.stream_tokens(tokens, GREEDY, shelve=shelve))
    [done] = [e for e in events if isinstance(e, GenerationDone)]
    return "".join(e.text for e in events if isinstance(e, TextPiece)), done.stats


@pytest.fixture
def engine(smollm2_engine):
    yield smollm2_engine
    smollm2_engine._shelf.clear()  # the session's engine: leave nothing kept for other tests


def test_the_few_shot_prefix_comes_back_after_another_prompt(engine):
    first = engine.tokenize(EXAMPLES + "English: The file is empty.\nFrench:", add_bos=True)
    strict = engine.tokenize("Translate into French, and write nothing else.\nThe file is empty.\n", add_bos=True)
    following = engine.tokenize(EXAMPLES + "English: Save your changes.\nFrench:", add_bos=True)
    shared = len(engine.tokenize(EXAMPLES, add_bos=True)) - 2
    assert shared > WORTH_KEEPING

    reply(engine, first)
    _, strict_stats = reply(engine, strict)
    assert strict_stats.cached_prompt_tokens < WORTH_KEEPING  # a different prompt: the cache was no use
    text, stats = reply(engine, following)
    assert stats.cached_prompt_tokens >= shared, "the examples came back from the shelf, not decoded again"

    # The same as asking it straight after the first prompt: the cells are the first prompt's own.
    reply(engine, first, shelve=False)
    direct, direct_stats = reply(engine, following, shelve=False)
    assert direct_stats.cached_prompt_tokens == stats.cached_prompt_tokens and direct == text


def test_without_shelve_the_prefix_is_decoded_again(engine):
    first = engine.tokenize(EXAMPLES + "English: The file is empty.\nFrench:", add_bos=True)
    strict = engine.tokenize("Translate into French, and write nothing else.\nThe file is empty.\n", add_bos=True)
    reply(engine, first, shelve=False)
    reply(engine, strict, shelve=False)
    _, stats = reply(engine, first, shelve=False)
    assert stats.cached_prompt_tokens < WORTH_KEEPING


def test_short_caches_are_not_kept(engine):
    reply(engine, engine.tokenize("English: Hello.\nFrench:", add_bos=True))
    engine._shelf.clear()  # whatever longer cache an earlier test left was just kept: drop it
    reply(engine, engine.tokenize("Translate into French: Hello.\n", add_bos=True))
    assert engine._shelf.kept_tokens == 0  # the few tokens it replaced were not worth a copy
