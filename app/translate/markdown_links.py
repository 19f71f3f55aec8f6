"""Whether a translation kept the Markdown links of its source working, checked after restoration.

Protection (protection.py) hides a link's "[" and "](target)" behind markers, so the model
translates only the link's text. This is the independent check on the restored text: every link
of the source must still be a link, with the same target, and a non-empty text; and a link text
of real words that comes back word for word while the sentence around it was translated was left
in the source language (of two links in one sentence, small models often translate one). A
segment that fails is retried, then translated piece by piece around its markers (which keeps
the links by construction); what still fails is reported and lowers the confidence.
"""

from __future__ import annotations

import re

# An inline link's target as CommonMark allows it: a destination, either <in angle brackets> (it
# may hold spaces) or without spaces (with balanced parentheses, one level deep), then optionally
# a title in "double quotes", 'single quotes' or (parentheses). Each of these forms was sent to the
# model as text and came back broken, so protection.py hides every one of them.
_DESTINATION = r"<[^<>\n]*>|(?:[^()\s]|\([^()\s]*\))+"
_TITLE = r"\"[^\"\n]*\"|'[^'\n]*'|\([^()\n]*\)"
INLINE_TARGET = rf"\((?:{_DESTINATION})(?:\s+(?:{_TITLE}))?\)"
REFERENCE_TARGET = r"\[[^\]\n]+\]"

# [text](target), ![alt](src "title"), [text][ref]; a link text may hold one level of brackets, and
# line breaks (a paragraph wrapped in the middle of a link is still one link).
LINK = re.compile(
    r"(?P<open>!?\[)(?P<text>(?:[^\[\]]|\[[^\[\]]*\])*)\]"
    rf"(?P<target>{INLINE_TARGET}|{REFERENCE_TARGET})"
)
_REAL_WORD = re.compile(r"[^\W\d_]{3,}")


def links(text: str) -> list[tuple[str, str, str]]:
    """(opening, text, target) of every Markdown link and image in `text`, in order."""
    return [(m.group("open"), m.group("text"), m.group("target")) for m in LINK.finditer(text)]


def broken_links(source: str, translation: str) -> list[str]:
    """What the translation broke: links lost or changed, link texts emptied (empty: nothing)."""
    before, after = links(source), links(translation)
    if not before:
        return []
    problems = []
    wanted = sorted((opening, target) for opening, _, target in before)
    found = sorted((opening, target) for opening, _, target in after)
    if wanted != found:
        missing = [f"{opening}…]{target}" for opening, target in wanted if (opening, target) not in found]
        problems.append("link broken: " + (", ".join(missing) if missing else "links changed"))
    if any(text.strip() for _, text, _ in before) and any(not text.strip() for _, text, _ in after):
        problems.append("a link's text is empty")
    return problems


def untranslated_link_texts(source: str, translation: str) -> list[str]:
    """Link texts of two real words or more that the translation kept unchanged though it translated the rest."""
    if _outside_links(source).strip() == _outside_links(translation).strip():
        return []  # nothing was translated at all: a copy, which other checks report
    kept = []
    translated_texts = {text.strip() for _, text, _ in links(translation)}
    for _, text, _ in links(source):
        if len(_REAL_WORD.findall(text)) >= 2 and text.strip() in translated_texts:
            kept.append(text.strip())
    return kept


def _outside_links(text: str) -> str:
    return LINK.sub(" ", text)
