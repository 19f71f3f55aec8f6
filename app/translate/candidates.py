"""Choosing one translation among several candidates of the same segment.

The candidates are greedy answers and answers sampled at temperature (`candidate_samplings`),
of two prompts (below): a small model's greedy answer is often not its best one, and sampled
answers err in different places. The choice, in order: fewer problems (empty, a copy, a lost
span, a broken link); not reading as the source language (the small model's most common failure
is leaving half a sentence in English); then consensus, the candidate closest on average to the
others by character n-gram F-score (the chrF formula: a translation that the other samples
nearly agree with is rarely the odd one out, "minimum Bayes risk" selection), with the model's
own mean token probability of it breaking near-ties.

Two prompts (`candidate_split`): most candidates answer the segment's usual prompt, the rest a
prompt that also shows the sentences of the shipped corpus nearest to the segment
(nearest_examples.py), greedy first in each. The nearest examples alone lost chrF on most sets,
and more samples of one prompt stopped helping at twelve (sixteen: no better), but answers of the
second prompt err in other places than those of the first, and the consensus over both found
better ones: on all messages of both evaluation sets into French, German and Spanish with
gemma3-270m, twelve of the usual prompt and eight of the second gained +1.3 chrF on Django's
messages and +2.8 on Sphinx's over twelve of the usual prompt alone, for about 40% more time
(bench/RESULTS.md "translate vs filing day"). The first version of this module asked three
prompts for one greedy answer each, with the consensus of three: -1.4 to +4.3.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from llamadesk.app.engine.types import Sampling

CHAR_ORDER = 6  # n-gram lengths 1..6, as chrF
BETA = 2.0  # recall weighs twice precision, as chrF
PROBABILITY_WEIGHT = 0.1  # how much the model's own mean token probability counts beside consensus

# translate --candidates without a count: twelve answers of the usual prompt (the best of 8, 12 and
# 16 of it alone: +4.2 chrF over greedy, bench/RESULTS.md "translate sample count") and eight of
# the prompt with the nearest examples; each candidate costs about one more answer's generation
# (each prompt is read once).
DEFAULT_CANDIDATES = 20
# The share of the candidates that answer the prompt with the nearest examples (8 of 20).
NEAREST_SHARE = 0.4
MAX_CANDIDATES = 32
# Sampling for the candidates after the greedy one: min-p keeps only tokens within 1/20 of the
# likeliest (no nonsense tails), the temperature spreads the rest; top-k and top-p off, as
# minimum-Bayes-risk decoding wants an unbiased sample of what the model would say.
SAMPLE_TEMPERATURE = 0.8
SAMPLE_MIN_P = 0.05


@dataclass(frozen=True)
class Candidate:
    text: str
    problems: tuple[str, ...]
    reads_as_source: bool
    mean_logprob: float | None


def char_f_score(hypothesis: str, reference: str) -> float:
    """chrF of one sentence pair (0..1): the F-beta score of character n-grams, spaces removed."""
    a, b = hypothesis.replace(" ", ""), reference.replace(" ", "")
    scores = []
    for n in range(1, CHAR_ORDER + 1):
        grams_a = Counter(a[i : i + n] for i in range(len(a) - n + 1))
        grams_b = Counter(b[i : i + n] for i in range(len(b) - n + 1))
        if not grams_a or not grams_b:
            continue
        common = sum((grams_a & grams_b).values())
        precision, recall = common / sum(grams_a.values()), common / sum(grams_b.values())
        if precision + recall:
            scores.append((1 + BETA**2) * precision * recall / (BETA**2 * precision + recall))
        else:
            scores.append(0.0)
    return sum(scores) / len(scores) if scores else 0.0


def choose(candidates: list[Candidate]) -> int:
    """The index of the candidate to keep (see the module's docstring)."""
    fewest = min(len(c.problems) for c in candidates)
    pool = [i for i, c in enumerate(candidates) if len(c.problems) == fewest]
    if any(not candidates[i].reads_as_source for i in pool):
        pool = [i for i in pool if not candidates[i].reads_as_source]
    if len(pool) == 1:
        return pool[0]

    def merit(i: int) -> float:
        others = [j for j in range(len(candidates)) if j != i]
        consensus = sum(char_f_score(candidates[i].text, candidates[j].text) for j in others) / len(others)
        logprob = candidates[i].mean_logprob
        return consensus + (PROBABILITY_WEIGHT * math.exp(logprob) if logprob is not None else 0.0)

    return max(pool, key=merit)


def candidate_split(n: int) -> tuple[int, int]:
    """How many of `n` candidates answer the usual prompt and how many the one with the nearest examples
    (each at least one, greedy first, when n >= 2)."""
    nearest = min(max(round(n * NEAREST_SHARE), 1), n - 1) if n >= 2 else 0
    return n - nearest, nearest


def candidate_samplings(n: int) -> list[Sampling]:
    """How to sample the `n - 1` candidates after the greedy one: fixed seeds, so a run repeats."""
    return [
        Sampling(temperature=SAMPLE_TEMPERATURE, top_k=0, top_p=1.0, min_p=SAMPLE_MIN_P, seed=seed, logprobs=True)
        for seed in range(1, n)
    ]
