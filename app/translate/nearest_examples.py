"""Few-shot examples chosen for the segment at hand: the corpus sentences that share its words.

A small base model copies the wording of its examples: "Save changes" among the examples makes
"Enregistrer" likely for "Save the file". So besides the fixed examples (examples.py, which teach
the shape: markers, one line), the prompt shows the few sentences of a parallel corpus closest to
the segment. The corpus (example_corpus.json, built by bench/make_translate_examples.py) is the
human translations of Django's contrib apps as Django's wheel ships them (BSD-3-Clause), without
the messages of Django's core catalog that the benchmarks use.

Closeness is TF-IDF over words: the rare words the segment shares with a sentence count most,
"the" and "is" barely. Placeholders in an example become markers as in the segment, so the
example shows them carried over.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from llamadesk.app.translate.protection import MARKER_RE, protect

CORPUS_PATH = Path(__file__).with_name("example_corpus.json")
NEAREST = 3  # examples per segment: more lengthen every prompt for little gain
MIN_SIMILARITY = 0.1  # below this a sentence shares only common words: it teaches nothing
MAX_EXAMPLE_CHARS = 140  # a long example costs prompt time on every call that shows it
_WORD = re.compile(r"[^\W\d_]{2,}")


def words(text: str) -> list[str]:
    """Lower-cased words of `text`, markers and placeholders left out, a plural -s folded."""
    plain = MARKER_RE.sub(" ", text)
    return [w[:-1] if len(w) > 3 and w.endswith("s") else w for w in (m.casefold() for m in _WORD.findall(plain))]


@dataclass(frozen=True)
class _Index:
    pairs: tuple[tuple[str, str], ...]
    vectors: tuple[dict[str, float], ...]
    idf: dict[str, float]


class ExampleCorpus:
    """Parallel sentences by language code, searched for the ones nearest a segment."""

    def __init__(self, rows: list[dict[str, str]]):
        self.rows = rows
        self._indexes: dict[tuple[str, str], _Index] = {}

    @classmethod
    def from_file(cls, path: Path = CORPUS_PATH) -> ExampleCorpus:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls([row for row in data["rows"] if isinstance(row, dict)])

    def _index(self, source: str, target: str) -> _Index:
        key = (source, target)
        if key not in self._indexes:
            pairs = tuple(
                pair
                for row in self.rows
                if isinstance(row.get(source), str)
                and isinstance(row.get(target), str)
                and len(row[source]) <= MAX_EXAMPLE_CHARS
                for pair in [_protected_pair(row[source], row[target])]
                if pair is not None
            )
            counts = [Counter(words(a)) for a, _ in pairs]
            document_frequency = Counter(word for count in counts for word in count)
            idf = {word: math.log((1 + len(pairs)) / (1 + n)) + 1 for word, n in document_frequency.items()}
            vectors = tuple(_normalized({w: c * idf[w] for w, c in count.items()}) for count in counts)
            self._indexes[key] = _Index(pairs, vectors, idf)
        return self._indexes[key]

    def nearest(self, text: str, source: str, target: str, k: int = NEAREST) -> list[tuple[str, str]]:
        """Up to `k` (source, target) pairs closest to `text`, the closest last (next to the segment).

        `text` is a protected segment (⟦n⟧ markers); so are the pairs. Empty when the corpus has
        no pair for the two language codes or nothing close enough.
        """
        index = self._index(source, target)
        if not index.pairs:
            return []
        query = _normalized({w: c * index.idf.get(w, 0.0) for w, c in Counter(words(text)).items()})
        if not query:
            return []
        scored = []
        for i, vector in enumerate(index.vectors):
            similarity = sum(weight * vector.get(word, 0.0) for word, weight in query.items())
            if similarity >= MIN_SIMILARITY and index.pairs[i][0] != text:
                scored.append((similarity, i))
        best = sorted(scored, reverse=True)[:k]
        return [index.pairs[i] for _, i in reversed(best)]


def _normalized(vector: dict[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(v * v for v in vector.values()))
    return {w: v / norm for w, v in vector.items()} if norm else {}


def _protected_pair(source: str, target: str) -> tuple[str, str] | None:
    """Both sides with the source's spans as markers, or None if the target lacks one of them."""
    protected = protect(source)
    out = target.strip()
    for n, span in enumerate(protected.spans, start=1):
        if span.original not in out:
            return None
        out = out.replace(span.original, f"⟦{n}⟧", 1)
    if "\n" in protected.text or "\n" in out:
        return None
    return protected.text, out


@functools.cache
def shipped_corpus() -> ExampleCorpus:
    """The corpus that ships with llamadesk, read once per process."""
    return ExampleCorpus.from_file()
