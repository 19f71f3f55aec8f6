"""Build bench/data/translate_eval.jsonl: English -> French, German, Spanish pairs from Django.

Django's wheel ships the human translations of its own messages (conf/locale/LANG/LC_MESSAGES/
django.po, BSD-3-Clause like Django; translated by the Django community on Transifex). This
takes English messages that all three languages translate (not fuzzy, no plural forms, no
context), of sentence length, a third of them with placeholders, chosen by a stable hash so the
set does not depend on file order. Run with the test environment: `.venv/bin/python
bench/make_translate_eval.py` (needs `django`, a test package).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from pathlib import Path

import django

LANGS = ("fr", "de", "es")
PER_LANGUAGE = 40
WITH_PLACEHOLDERS = 14
OUT = Path(__file__).resolve().parent / "data" / "translate_eval.jsonl"
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]|%[sd]|\{[a-z_0-9]*\}")


def read_po(path: Path) -> dict[str, str]:
    """msgid -> msgstr for the simple entries of a .po file (no msgctxt, no plural, not fuzzy)."""
    entries: dict[str, str] = {}
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        lines = block.strip().splitlines()
        if any(line.startswith(("msgctxt", "msgid_plural")) for line in lines):
            continue
        if any(line.startswith("#,") and "fuzzy" in line for line in lines):
            continue
        fields: dict[str, str] = {}
        key = None
        for line in lines:
            if line.startswith("#"):
                continue
            match = re.match(r'(msgid|msgstr) (".*")$', line)
            if match:
                key = match.group(1)
                fields[key] = ast.literal_eval(match.group(2))
            elif key and line.startswith('"'):
                fields[key] += ast.literal_eval(line)
        if fields.get("msgid") and fields.get("msgstr"):
            entries[fields["msgid"]] = fields["msgstr"]
    return entries


def main() -> None:
    locale = Path(django.__file__).parent / "conf" / "locale"
    catalogs = {lang: read_po(locale / lang / "LC_MESSAGES" / "django.po") for lang in LANGS}
    common = set.intersection(*(set(c) for c in catalogs.values()))
    usable = sorted(
        (m for m in common if 25 <= len(m) <= 160 and "\n" not in m and re.search(r"[a-z]{3} [a-z]{3}", m)),
        key=lambda m: hashlib.sha256(m.encode()).hexdigest(),
    )
    with_ph = [m for m in usable if PLACEHOLDER.search(m)][:WITH_PLACEHOLDERS]
    without = [m for m in usable if not PLACEHOLDER.search(m)][: PER_LANGUAGE - len(with_ph)]
    chosen = sorted(with_ph + without, key=lambda m: hashlib.sha256(m.encode()).hexdigest())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as out:
        for lang in LANGS:
            for message in chosen:
                out.write(
                    json.dumps(
                        {
                            "source_lang": "en",
                            "target_lang": lang,
                            "source": message,
                            "reference": catalogs[lang][message],
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )
    print(f"{len(chosen)} messages x {len(LANGS)} languages -> {OUT} (Django {django.__version__})")


if __name__ == "__main__":
    main()
