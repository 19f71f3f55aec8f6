"""Choosing one translation among several candidates of the same segment.

The candidates are the greedy answer and answers sampled from the same prompt at temperature
(`candidate_samplings`): a small model's greedy answer is often not its best one, and sampled
answers err in different places. The choice, in order: fewer problems (empty, a copy, a lost
span, a broken link); not reading as the source language (the small model's most common failure
is leaving half a sentence in English); then consensus, the candidate closest on average to the
others by character n-gram F-score (the chrF formula: a translation that the other samples
nearly agree with is rarely the odd one out, "minimum Bayes risk" selection), with the model's
own mean token probability of it breaking near-ties.

Why sampling and not prompt variants (the first version asked three prompts: with the nearest
examples of the shipped corpus, with the fixed examples, with both): on all 40 messages of both
evaluation sets, English to French and Spanish with gemma3-270m, twelve candidates gained +2.7 to
+7.3 chrF over the pipeline of the day issue #19 was filed, where the three prompts went from -1.4
to +4.3 (bench/RESULTS.md "translate vs filing day").
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from llamadesk.app.engine.types import Sampling

CHAR_ORDER = 6  # n-gram lengths 1..6, as chrF
BETA = 2.0  # recall weighs twice precision, as chrF
PROBABILITY_WEIGHT = 0.1  # how much the model's own mean token probability counts beside consensus

# translate --candidates without a count: the best mean gain on the evaluation sets (+4.2 chrF over
# greedy, against +3.1 at 8 and +4.1 at 16; bench/RESULTS.md "translate sample count"); each
# candidate costs about one more answer's generation (the prompt is read once).
DEFAULT_CANDIDATES = 12
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


def candidate_samplings(n: int) -> list[Sampling]:
    """How to sample the `n - 1` candidates after the greedy one: fixed seeds, so a run repeats."""
    return [
        Sampling(temperature=SAMPLE_TEMPERATURE, top_k=0, top_p=1.0, min_p=SAMPLE_MIN_P, seed=seed, logprobs=True)
        for seed in range(1, n)
    ]
