"""Choosing one translation among several candidates of the same segment.

The candidates are greedy answers and answers sampled at temperature (`candidate_samplings`),
of three prompts (below): a small model's greedy answer is often not its best one, and sampled
answers err in different places. The choice, in order: fewer problems (empty, a copy, a lost
span, a broken link); not reading as the source language (the small model's most common failure
is leaving half a sentence in English); then consensus, the candidate closest on average to the
others by character n-gram F-score (the chrF formula: a translation that the other samples
nearly agree with is rarely the odd one out, "minimum Bayes risk" selection), with the model's
own mean token probability of it breaking near-ties.

Three prompts (`CANDIDATE_PROMPTS`, `candidate_split`): the segment's usual prompt, and two that
also show the sentences of the shipped corpus nearest to the segment (nearest_examples.py), three
and five of them; greedy first in each. The nearest examples alone lost chrF on most sets, and
more samples of one prompt stopped helping at twelve (sixteen: no better), but answers of other
prompts err in other places than those of the first, and the consensus over them all finds better
ones. On all messages of both evaluation sets into French, German and Spanish with gemma3-270m
(bench/RESULTS.md "translate vs filing day"): twelve answers of the usual prompt and eight of the
three-example prompt gained +1.3 chrF on Django's messages and +2.8 on Sphinx's over twelve of the
usual prompt alone; splitting the same twenty over three prompts (8, 6, 6) gained a further +0.8
on Django's and +0.7 on Sphinx's (a sweep over the same answers; 12 + 8 + 8 did only +0.1 better
than 8 + 6 + 6 on Django, for 40% more time). With 8, 6, 6: +5.4 (Django) and +7.9 (Sphinx) over
the pipeline of the day issue #19 was filed. Where the corpus has fewer sentences near the
segment, a prompt that would show the same examples as one before it is not asked twice: its
candidates go to that one, with further seeds.
The first version of this module asked three prompts for one greedy answer each, with the
consensus of three: -1.4 to +4.3.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from llamadesk.app.engine.types import Sampling

CHAR_ORDER = 6  # n-gram lengths 1..6, as chrF
BETA = 2.0  # recall weighs twice precision, as chrF
PROBABILITY_WEIGHT = 0.1  # how much the model's own mean token probability counts beside consensus

# translate --candidates without a count: twenty answers, eight of the usual prompt (twelve alone
# were the best of 8, 12 and 16: +4.2 chrF over greedy, bench/RESULTS.md "translate sample count")
# and six of each prompt with nearest examples; each candidate costs about one more answer's
# generation (each prompt is read once).
DEFAULT_CANDIDATES = 20
# The prompts the candidates answer, as (how many of the corpus's sentences nearest the segment it
# shows, its share of the candidates); the first is the usual prompt.
CANDIDATE_PROMPTS = ((0, 0.4), (3, 0.3), (5, 0.3))
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


def candidate_split(n: int) -> list[int]:
    """How many of `n` candidates answer each prompt of CANDIDATE_PROMPTS (the shares of `n`, rounded
    by largest remainder, earlier prompts first on ties): 20 gives 8, 6, 6; 3 gives one each; 2
    gives the usual prompt and the first with examples one each."""
    exact = [n * share for _, share in CANDIDATE_PROMPTS]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


def candidate_samplings(n: int) -> list[Sampling]:
    """How to sample the `n - 1` candidates after the greedy one: fixed seeds, so a run repeats."""
    return [
        Sampling(temperature=SAMPLE_TEMPERATURE, top_k=0, top_p=1.0, min_p=SAMPLE_MIN_P, seed=seed, logprobs=True)
        for seed in range(1, n)
    ]
