"""Glossaries: terms that must be translated one required way.

A glossary file has one entry per line, `term = translation` (a tab or ` -> ` also separates);
blank lines and lines starting with # are ignored. Matching is by whole words, ignoring case.
"""

from __future__ import annotations

import re
from pathlib import Path

from llamadesk.app.core.errors import BadInputError
from llamadesk.app.translate.source_text import read_source_file

SEPARATORS = re.compile(r"\t| = | -> | → |=")
GLOSSARY_MAX_BYTES = 1024**2  # thousands of terms; each one is searched for in every segment


def parse_glossary(text: str, origin: str = "glossary") -> dict[str, str]:
    """Term -> required translation; a line without a separator is a BadInputError naming it."""
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = SEPARATORS.split(stripped, maxsplit=1)
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise BadInputError(
                f"{origin} line {number}: {stripped!r} is not 'term = translation'; fix or remove the line"
            )
        entries[parts[0].strip()] = parts[1].strip()
    return entries


def load_glossary(path: Path | str) -> dict[str, str]:
    """Read a glossary file (UTF-8, at most GLOSSARY_MAX_BYTES)."""
    name = f"--glossary {path}"
    return parse_glossary(read_source_file(Path(path), name, GLOSSARY_MAX_BYTES), name)


def _term_pattern(term: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(term)}(?!\w)", re.IGNORECASE)


def terms_in(text: str, glossary: dict[str, str]) -> dict[str, str]:
    """The glossary entries whose term occurs in `text`."""
    return {term: translation for term, translation in glossary.items() if _term_pattern(term).search(text)}


def missing_terms(translation: str, required: dict[str, str]) -> list[str]:
    """Terms whose required translation does not appear in `translation`."""
    return [term for term, wanted in required.items() if not _term_pattern(wanted).search(translation)]
