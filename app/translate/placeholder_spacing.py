"""A space between a placeholder and the word the model glued to it.

A small model now and then writes a placeholder against the next word: "copier le %sdescription",
"Le %(value)rvalue" (4 of 86 placeholders in the starter's greedy translations of the evaluation
sets). The placeholder itself is intact, so msgfmt and the span checks pass, and the user reads
"le 3description". Where the source has a space on one side of a placeholder and never a letter
against it, a letter on that side in the translation gets a space between. A source that glues
it itself ("%dpx", "file{s}") is followed; languages written without spaces between words are
left as they are.
"""

from __future__ import annotations

from llamadesk.app.translate.protection import find_spans

PLACEHOLDER_KINDS = ("printf", "format")
# Written without spaces between words: a placeholder against a word is normal there.
UNSPACED_LANGUAGES = ("zh", "ja", "th", "lo", "km", "my", "bo")


def _sides(source: str) -> tuple[set[str], set[str]]:
    """The placeholders the source spaces after, and before: a space on that side at least once, a letter never."""
    neighbours: dict[str, list[tuple[str, str]]] = {}
    for start, end, kind in find_spans(source):
        text = source[start:end]
        if kind in PLACEHOLDER_KINDS and text != "%%":
            neighbours.setdefault(text, []).append((source[start - 1 : start], source[end : end + 1]))

    def spaced(sides: list[str]) -> bool:
        return any(c.isspace() for c in sides) and not any(c.isalpha() for c in sides)

    after = {text for text, pairs in neighbours.items() if spaced([f for _, f in pairs])}
    before = {text for text, pairs in neighbours.items() if spaced([p for p, _ in pairs])}
    return after, before


def space_glued_placeholders(source: str, translation: str, target_code: str) -> str:
    """`translation` with a space where a placeholder spaced in `source` touches a letter."""
    if target_code.split("-")[0] in UNSPACED_LANGUAGES:
        return translation
    spaced_after, spaced_before = _sides(source)
    if not spaced_after and not spaced_before:
        return translation
    # Searched as text, not as spans: "%sdescription" is no printf span (a letter follows), and
    # that is the case to mend. Inside a URL, a tag or code, nothing is touched.
    other_spans = [(s, e) for s, e, kind in find_spans(translation) if kind not in PLACEHOLDER_KINDS]
    inserts: set[int] = set()
    for text in spaced_after | spaced_before:
        start = translation.find(text)
        while start >= 0:
            end = start + len(text)
            if not any(s < end and start < e for s, e in other_spans):
                if text in spaced_before and translation[start - 1 : start].isalpha():
                    inserts.add(start)
                if text in spaced_after and translation[end : end + 1].isalpha():
                    inserts.add(end)
            start = translation.find(text, end)
    for index in sorted(inserts, reverse=True):
        translation = translation[:index] + " " + translation[index:]
    return translation
