"""Build app/translate/example_corpus.json: the parallel sentences few-shot prompts choose from.

Django's wheel ships the human translations of its contrib apps (admin, auth, admindocs,
humanize, flatpages, ...: django/contrib/APP/locale/LANG/LC_MESSAGES/django.po, BSD-3-Clause,
translated by the Django community). Every English message that is translated (not fuzzy, no
plural, no context, one line) into at least one of the languages below becomes a row. Messages
that Django's core catalog (django/conf/locale) also has are left out: the translation
benchmarks (bench/translate.py, bench/translate_files.py) are cut from that catalog, and an
example identical to the segment under test would measure memory, not translation.

    .venv/bin/python bench/make_translate_examples.py      (needs django, a test package)
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import django
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "app" / "translate" / "example_corpus.json"
# llamadesk code -> Django's locale folder
LANGUAGES = {
    "fr": "fr",
    "de": "de",
    "es": "es",
    "it": "it",
    "pt": "pt_BR",
    "nl": "nl",
    "pl": "pl",
    "ru": "ru",
    "zh": "zh_Hans",
    "ja": "ja",
    "sv": "sv",
    "da": "da",
    "cs": "cs",
    "tr": "tr",
    "uk": "uk",
    "ko": "ko",
}
MAX_CHARS = 200


def simple_entries(path: Path) -> dict[str, str]:
    """msgid -> msgstr of the translated, non-fuzzy, context-free singular one-line messages."""
    if not path.exists():
        return {}
    catalog = read_po(io.BytesIO(path.read_bytes()))
    entries = {}
    for message in catalog:
        if not message.id or message.pluralizable or message.context or message.fuzzy:
            continue
        if not message.string or "\n" in message.id or len(message.id) > MAX_CHARS:
            continue
        entries[message.id] = message.string
    return entries


def main() -> None:
    logging.getLogger("babel").setLevel(logging.ERROR)  # Babel warns about CLDR's plural counts, not our business here
    base = Path(django.__file__).parent
    core = set(simple_entries(base / "conf" / "locale" / "fr" / "LC_MESSAGES" / "django.po"))
    english_catalog = read_po(io.BytesIO((base / "conf" / "locale" / "en" / "LC_MESSAGES" / "django.po").read_bytes()))
    core |= {message.id for message in english_catalog if isinstance(message.id, str)}
    rows: dict[str, dict[str, str]] = {}
    for app in sorted(p for p in (base / "contrib").iterdir() if (p / "locale").is_dir()):
        for code, folder in LANGUAGES.items():
            for english, translated in simple_entries(app / "locale" / folder / "LC_MESSAGES" / "django.po").items():
                if english in core or translated == english:
                    continue
                rows.setdefault(english, {"en": english})[code] = translated
    corpus = {
        "source": f"Django {django.__version__}, django/contrib/*/locale/*/LC_MESSAGES/django.po",
        "licence": "BSD-3-Clause (Django Software Foundation and individual contributors)",
        "left_out": "messages that Django's core catalog (django/conf/locale) also has",
        "rows": [rows[english] for english in sorted(rows)],
    }
    OUT.write_text(json.dumps(corpus, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"{len(rows)} English messages -> {OUT} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
