"""Glossaries: terms that must be translated one required way.

A glossary file has one entry per line, `term = translation` (a tab or ` -> ` also separates);
blank lines and lines starting with # are ignored. Matching is by whole words, ignoring case.
"""

from __future__ import annotations

import re
from pathlib import Path

from llamadesk.app.core.errors import BadInputError

SEPARATORS = re.compile(r"\t| = | -> | → |=")


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
    """Read a glossary file (UTF-8)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(f"--glossary {path}: no such file") from None
    except UnicodeDecodeError:
        raise BadInputError(f"--glossary {path}: not UTF-8 text; save it as UTF-8") from None
    except IsADirectoryError:
        raise BadInputError(f"--glossary {path} is a folder; give a text file") from None
    return parse_glossary(text, f"--glossary {path}")


def _term_pattern(term: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(term)}(?!\w)", re.IGNORECASE)


def terms_in(text: str, glossary: dict[str, str]) -> dict[str, str]:
    """The glossary entries whose term occurs in `text`."""
    return {term: translation for term, translation in glossary.items() if _term_pattern(term).search(text)}


def missing_terms(translation: str, required: dict[str, str]) -> list[str]:
    """Terms whose required translation does not appear in `translation`."""
    return [term for term, wanted in required.items() if not _term_pattern(wanted).search(translation)]
