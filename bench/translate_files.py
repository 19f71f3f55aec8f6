"""A gettext catalog translated as a file, scored against the human translation that ships with it,
and whether the confidence score separates good translations from bad ones.

The template is Django's English catalog (django/conf/locale/en/LC_MESSAGES/django.po, in the
Django wheel, BSD-3-Clause), cut to the messages that Django's French catalog translates (not
fuzzy), chosen by a stable hash so the set does not depend on file order: plurals and msgctxt
entries included. It goes through `read_translatable` + `FileJob` with gemma3-270m, greedy, as
`llamadesk translate --to fr django.pot -o fr.po` would, and the written .po is read back with
Babel. chrF (sacrebleu, corpus level) against Django's French msgstr, per form for plurals.

Confidence (confidence.py: the model's mean token probability and the cheap checks): the
segments sorted by their score (ties kept in file order), chrF of the higher half against the
lower half; the issue's goal is 10 points apart. Writes the "## translate-files"
section of bench/RESULTS.md.

    .venv/bin/python bench/translate_files.py [--limit N] [--no-write]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import platform
import sys
import time
from pathlib import Path

import django
import sacrebleu
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po
from results_file import update_section  # bench/ is on sys.path when run as a script

from llamadesk.app.core.machine import machine_facts
from llamadesk.app.engine.llama_engine import Engine
from llamadesk.app.engine.types import LoadSettings
from llamadesk.app.library.starters import starter_path
from llamadesk.app.translate import JobFinished, JobSettings, resolve_language, translator_for
from llamadesk.app.translate.confidence import LOW_CONFIDENCE
from llamadesk.app.translate.file_job import FileJob
from llamadesk.app.translate.formats import read_translatable

LOCALE = Path(django.__file__).parent / "conf" / "locale"


def key(message) -> tuple:
    return (message.id if not message.pluralizable else tuple(message.id), message.context)


def template_and_references(limit: int) -> tuple[bytes, dict]:
    """A .pot of `limit` messages that Django's French catalog translates, and those translations."""
    english = read_po(io.BytesIO((LOCALE / "en" / "LC_MESSAGES" / "django.po").read_bytes()))
    french = read_po(io.BytesIO((LOCALE / "fr" / "LC_MESSAGES" / "django.po").read_bytes()))
    references = {}
    for message in french:
        strings = message.string if message.pluralizable else (message.string,)
        if message.id and not message.fuzzy and all(strings):
            references[key(message)] = strings
    usable = [m for m in english if m.id and key(m) in references]
    chosen = sorted(usable, key=lambda m: hashlib.sha256(repr(key(m)).encode()).hexdigest())[:limit]
    pot = Catalog(project="Django", fuzzy=True)
    for message in chosen:
        pot.add(message.id, "", locations=message.locations, flags=message.flags, context=message.context)
    out = io.BytesIO()
    write_po(out, pot)
    return out.getvalue(), references


def chrf(hypotheses: list[str], references: list[str]) -> float:
    return sacrebleu.corpus_chrf(hypotheses, [references]).score if hypotheses else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=60, help="messages in the template (default 60)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    begun = time.perf_counter()
    pot, references = template_and_references(args.limit)
    french = resolve_language("fr")
    document = read_translatable("django.pot", pot, french)
    with Engine.load(starter_path("gemma3-270m"), LoadSettings(n_ctx=2048, n_threads=args.threads)) as engine:
        job = FileJob(translator_for(engine), document, JobSettings(french, resolve_language("en")))
        finished = next(e for e in job.run() if isinstance(e, JobFinished))
    catalog = read_po(io.BytesIO(finished.text.encode("utf-8")), abort_invalid=True)
    pairs = []  # (hypothesis, reference) per msgstr form
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if message.pluralizable else (message.string,)
        reference = references[key(message)]
        # French has 3 forms in CLDR and 2 in Django's catalog: the third is scored against the plural.
        for form, string in enumerate(strings):
            pairs.append((string, reference[min(form, len(reference) - 1)]))
    rejected = len(document.rejected)  # type: ignore[attr-defined]
    fuzzy = sum(1 for m in catalog if m.id and m.fuzzy)
    whole = chrf([h for h, _ in pairs], [r for _, r in pairs])
    # Segments against their unit's reference: the singular's for a msgid, the plural's for a msgid_plural.
    scored = []
    for slot, result in zip(document.slots, finished.results, strict=True):  # type: ignore[attr-defined]
        reference = references[key(slot.message)]
        form = slot.forms[0] if slot.forms else 0
        scored.append((result.confidence, result.translation, reference[min(form, len(reference) - 1)]))
    ranked = sorted(scored, key=lambda s: -s[0])
    half = len(ranked) // 2
    high = chrf([h for _, h, _ in ranked[:half]], [r for _, _, r in ranked[:half]])
    low = chrf([h for _, h, _ in ranked[half:]], [r for _, _, r in ranked[half:]])
    flagged = [s for s in scored if s[0] < LOW_CONFIDENCE]
    unflagged = [s for s in scored if s[0] >= LOW_CONFIDENCE]
    row = {
        "messages": len([m for m in catalog if m.id]),
        "segments": len(scored),
        "chrf": whole,
        "high": high,
        "low": low,
        "flagged": len(flagged),
        "chrf_flagged": chrf([h for _, h, _ in flagged], [r for _, _, r in flagged]),
        "chrf_unflagged": chrf([h for _, h, _ in unflagged], [r for _, _, r in unflagged]),
        "ties": sum(1 for s in scored if s[0] == 1.0),
        "fuzzy": fuzzy,
        "rejected": rejected,
        "seconds": finished.seconds / max(1, len(scored)),
    }
    print(row, flush=True)
    if not args.no_write:
        update_section("translate-files", render(row, args, machine_facts(), time.perf_counter() - begun))
    return 0


def render(row: dict, args, machine, seconds: float) -> str:
    command = "make .venv/.test-installed && .venv/bin/python bench/translate_files.py" + (
        f" --limit {args.limit}" if args.limit != 60 else ""
    )
    return "\n".join(
        [
            f"A .pot of {row['messages']} messages cut from Django's English catalog (those Django's French catalog",
            "translates; plurals and msgctxt included) translated to French as a file with gemma3-270m, greedy,",
            "read back with Babel and scored with chrF (sacrebleu) against Django's French msgstr.",
            "",
            f"Machine: {machine.physical_cores} physical cores, {platform.machine()}, shared with other jobs; "
            f"llama.cpp on {args.threads} thread(s). Command: `{command}`",
            "",
            "| format | messages | segments | chrF | fuzzy | left untranslated (format check) | s/segment |",
            "|---|---:|---:|---:|---:|---:|---:|",
            f"| gettext .pot -> fr.po | {row['messages']} | {row['segments']} | {row['chrf']:.1f} | {row['fuzzy']} "
            f"| {row['rejected']} | {row['seconds']:.2f} |",
            "",
            "| confidence | segments | chrF |",
            "|---|---:|---:|",
            f"| higher half | {row['segments'] // 2} | {row['high']:.1f} |",
            f"| lower half | {row['segments'] - row['segments'] // 2} | {row['low']:.1f} |",
            f"| flagged (< {LOW_CONFIDENCE}) | {row['flagged']} | {row['chrf_flagged']:.1f} |",
            f"| not flagged | {row['segments'] - row['flagged']} | {row['chrf_unflagged']:.1f} |",
            "",
            f"{row['ties']} of {row['segments']} segments score 1.0 (the halves split ties in file order).",
            f"Goal (halves >= 10 chrF apart): {'met' if row['high'] - row['low'] >= 10 else 'NOT met'} "
            f"({row['high'] - row['low']:+.1f}). Whole run: {seconds / 60:.1f} min.",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
