"""Build the evaluation sets of English -> French, German, Spanish pairs for bench/translate.py.

- bench/data/translate_eval.jsonl, from Django: its wheel ships the human translations of its own
  messages (conf/locale/LANG/LC_MESSAGES/django.po, BSD-3-Clause like Django; translated by the
  Django community on Transifex).
- bench/data/translate_eval_sphinx.jsonl, from Sphinx 9 (a documentation generator, another
  project, other translators): its wheel ships sphinx/locale/LANG/LC_MESSAGES/sphinx.po
  (BSD-2-Clause, translated by the Sphinx community on Transifex). A second set, so a change
  tuned on Django's messages is checked on text it was never tuned on.

Each takes English messages that the language translates (not fuzzy, no plural forms, no
context; for Django, messages all three translate), of sentence length, a third of them with
placeholders, chosen by a stable hash so the set does not depend on file order. Run with the
test environment: `.venv/bin/python bench/make_translate_eval.py` (needs `django`, a test
package, and `sphinx`, installed by hand: `.venv/bin/python -m pip install sphinx`; the sets
themselves are committed).
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
DATA = Path(__file__).resolve().parent / "data"
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


def choose(messages: set[str]) -> list[str]:
    """PER_LANGUAGE messages of sentence length, WITH_PLACEHOLDERS of them with placeholders, by a stable hash."""
    usable = sorted(
        (m for m in messages if 25 <= len(m) <= 160 and "\n" not in m and re.search(r"[a-z]{3} [a-z]{3}", m)),
        key=lambda m: hashlib.sha256(m.encode()).hexdigest(),
    )
    with_ph = [m for m in usable if PLACEHOLDER.search(m)][:WITH_PLACEHOLDERS]
    without = [m for m in usable if not PLACEHOLDER.search(m)][: PER_LANGUAGE - len(with_ph)]
    return sorted(with_ph + without, key=lambda m: hashlib.sha256(m.encode()).hexdigest())


def write_set(catalogs: dict[str, dict[str, str]], out: Path, shared: bool) -> str:
    """The set as JSON lines; `shared`: the same messages in every language (else each its own)."""
    common = choose(set.intersection(*(set(c) for c in catalogs.values()))) if shared else None
    counts = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for lang in LANGS:
            chosen = common if common is not None else choose(set(catalogs[lang]))
            counts.append(f"{lang} {len(chosen)}")
            for message in chosen:
                reference = catalogs[lang][message]
                row = {"source_lang": "en", "target_lang": lang, "source": message, "reference": reference}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return ", ".join(counts)


def main() -> None:
    import sphinx

    locale = Path(django.__file__).parent / "conf" / "locale"
    catalogs = {lang: read_po(locale / lang / "LC_MESSAGES" / "django.po") for lang in LANGS}
    out = DATA / "translate_eval.jsonl"
    print(f"{write_set(catalogs, out, shared=True)} messages -> {out} (Django {django.__version__})")
    locale = Path(sphinx.__file__).parent / "locale"
    catalogs = {lang: read_po(locale / lang / "LC_MESSAGES" / "sphinx.po") for lang in LANGS}
    out = DATA / "translate_eval_sphinx.jsonl"
    # Sphinx's German catalog is a fifth the size of its French one: each language takes its own messages.
    print(f"{write_set(catalogs, out, shared=False)} messages -> {out} (Sphinx {sphinx.__version__})")


if __name__ == "__main__":
    main()
