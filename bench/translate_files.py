"""A gettext catalog translated as a file, scored against the human translation that ships with it,
and whether the confidence score separates good translations from bad ones; then the same human
translations as subtitles, an HTML page and a Markdown file, one row per format.

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
import html
import io
import os
import platform
import re
import sys
import time
from pathlib import Path

import django
import sacrebleu
import srt
import webvtt
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po
from results_file import update_section  # bench/ is on sys.path when run as a script

from llamadesk.app.core.machine import machine_facts
from llamadesk.app.engine.llama_engine import Engine
from llamadesk.app.engine.types import LoadSettings
from llamadesk.app.library.starters import starter_path
from llamadesk.app.translate import JobFinished, JobSettings, TranslationJob, resolve_language, translator_for
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


# -- the other formats: the same human translations, in subtitles, a page and a Markdown file ------


def sentences(references: dict, limit: int) -> list[tuple[str, str]]:
    """(English, French) messages of one line, sentence-like, in the stable order of the template."""
    pairs = []
    for (english, context), french in sorted(
        references.items(), key=lambda kv: hashlib.sha256(repr(kv[0]).encode()).hexdigest()
    ):
        if isinstance(english, str) and not context and "\n" not in english and len(english.split()) >= 3:
            if not re.search(r"%|\{|<", english):  # placeholders are the gettext row's business
                pairs.append((english, french[0]))
    return pairs[:limit]


def clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def srt_file(pairs: list[tuple[str, str]]) -> str:
    cues = []
    for n, (english, _) in enumerate(pairs, start=1):
        start = n * 4
        words = english.split()
        # Longer messages on two lines, as subtitles are.
        text = (
            english
            if len(words) < 8
            else " ".join(words[: len(words) // 2]) + "\n" + " ".join(words[len(words) // 2 :])
        )
        cues.append(f"{n}\n{clock(start)},000 --> {clock(start + 3)},500\n{text}\n")
    return "\n".join(cues)


def vtt_file(pairs: list[tuple[str, str]]) -> str:
    body = srt_file(pairs).replace(",000 -->", ".000 -->").replace(",500\n", ".500\n")
    return "WEBVTT\n\n" + body


def html_file(pairs: list[tuple[str, str]]) -> str:
    paragraphs = []
    for n, (english, _) in enumerate(pairs):
        words = english.split()
        if n % 3 == 1:  # inline markup inside the sentence: one unit, tags kept
            words[1] = f"<em>{html.escape(words[1])}</em>"
            text = " ".join(w if w.startswith("<em>") else html.escape(w) for w in words)
        else:
            text = html.escape(english)
        paragraphs.append(f"  <p>{text}</p>")
    return '<!DOCTYPE html>\n<html lang="en">\n<body>\n' + "\n".join(paragraphs) + "\n</body>\n</html>\n"


def markdown_file(pairs: list[tuple[str, str]]) -> str:
    blocks = []
    for n, (english, _) in enumerate(pairs):
        words = english.split()
        if n % 3 == 1:  # a link inside the sentence
            words[0] = "[" + words[0]
            words[1] = words[1] + f"](https://example.com/{n})"
        text = " ".join(words)
        blocks.append(f"- {text}" if n % 3 == 2 else text)
    return "# Messages\n\n" + "\n\n".join(blocks) + "\n"


def texts_back(kind: str, text: str) -> list[str]:
    """The translated sentences, in order, read back from the translated file."""
    if kind == "srt":
        return [" ".join(cue.content.split()) for cue in srt.parse(text)]
    if kind == "vtt":
        return [" ".join(cue.text.split()) for cue in webvtt.from_string(text)]
    if kind == "html":
        return [" ".join(html.unescape(re.sub(r"<[^>]+>", "", p)).split()) for p in re.findall(r"<p>(.*?)</p>", text)]
    blocks = [b.strip() for b in text.split("\n\n")[1:] if b.strip()]
    return [re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", b).removeprefix("- ").strip() for b in blocks]


def same_structure(kind: str, source: str, translated: str) -> bool:
    """Cue numbers and timing, every tag, or every link target, as in the source."""
    from llamadesk.app.translate.markdown_links import links

    if kind == "srt":
        return [(c.index, c.start, c.end) for c in srt.parse(translated)] == [
            (c.index, c.start, c.end) for c in srt.parse(source)
        ]
    if kind == "vtt":
        return [(c.start, c.end) for c in webvtt.from_string(translated)] == [
            (c.start, c.end) for c in webvtt.from_string(source)
        ]
    if kind == "html":
        return re.findall(r"<[^>]+>", translated) == re.findall(r"<[^>]+>", source)
    return [target for _, _, target in links(translated)] == [target for _, _, target in links(source)]


def format_rows(engine, references: dict, limit: int) -> list[dict]:
    """One row per format: the same sentences as a file of that kind, translated and scored."""
    pairs = sentences(references, limit)
    english, french = resolve_language("en"), resolve_language("fr")
    settings = JobSettings(french, english)
    builders = {"srt": srt_file, "vtt": vtt_file, "html": html_file, "md": markdown_file}
    rows = []
    for kind, build in builders.items():
        source = build(pairs)
        translator = translator_for(engine)
        if kind == "md":
            job = TranslationJob(translator, source, settings)
        else:
            job = FileJob(translator, read_translatable(f"messages.{kind}", source.encode(), french), settings)
        finished = next(e for e in job.run() if isinstance(e, JobFinished))
        hypotheses = texts_back(kind, finished.text)
        if len(hypotheses) != len(pairs):
            raise SystemExit(f"{kind}: {len(hypotheses)} sentences came back for {len(pairs)}")
        structure = same_structure(kind, source, finished.text)
        rows.append(
            {
                "format": kind,
                "segments": len(finished.results),
                "sentences": len(pairs),
                "chrf": chrf(hypotheses, [f for _, f in pairs]),
                "structure": structure,
                "low": sum(1 for r in finished.results if r.confidence is not None and r.confidence < LOW_CONFIDENCE),
                "seconds": finished.seconds / max(1, len(finished.results)),
            }
        )
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=60, help="messages in the template (default 60)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sentences", type=int, default=24, help="sentences in each of the other formats")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    begun = time.perf_counter()
    pot, references = template_and_references(args.limit)
    french = resolve_language("fr")
    document = read_translatable("django.pot", pot, french)
    with Engine.load(starter_path("gemma3-270m"), LoadSettings(n_ctx=2048, n_threads=args.threads)) as engine:
        job = FileJob(translator_for(engine), document, JobSettings(french, resolve_language("en")))
        finished = next(e for e in job.run() if isinstance(e, JobFinished))
        formats = format_rows(engine, references, args.sentences)
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
        update_section("translate-files", render(row, formats, args, machine_facts(), time.perf_counter() - begun))
    return 0


def render(row: dict, formats: list[dict], args, machine, seconds: float) -> str:
    command = (
        "make .venv/.test-installed && .venv/bin/python bench/translate_files.py"
        + (f" --limit {args.limit}" if args.limit != 60 else "")
        + (f" --sentences {args.sentences}" if args.sentences != 24 else "")
    )
    names = {"srt": "subtitles .srt", "vtt": "subtitles .vtt", "html": "HTML page", "md": "Markdown"}
    format_lines = [
        f"| {names[f['format']]} | {f['sentences']} | {f['segments']} | {f['chrf']:.1f} | "
        f"{'identical' if f['structure'] else 'CHANGED'} | {f['low']} | {f['seconds']:.2f} |"
        for f in formats
    ]
    return "\n".join(
        [
            f"A .pot of {row['messages']} messages cut from Django's English catalog (those Django's French catalog",
            "translates; plurals and msgctxt included) translated to French as a file with gemma3-270m, greedy,",
            "read back with Babel and scored with chrF (sacrebleu) against Django's French msgstr.",
            "",
            f"Machine: {machine.physical_cores} physical cores, {platform.machine()}, shared with other jobs (load "
            f"average {os.getloadavg()[0]:.1f} at the end); llama.cpp on {args.threads} thread(s). "
            f"Command: `{command}`",
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
            "",
            f"The other formats: {formats[0]['sentences'] if formats else 0} one-line sentences of the same catalog "
            "(no placeholders) written as subtitles (one cue each, the",
            "longer ones on two lines), as an HTML page (a <p> each, every third with an <em> inside the sentence)",
            "and as Markdown (paragraphs, list items, every third with a link over its first two words); the",
            "translation is read back (srt, webvtt-py, the page's <p> text, the Markdown blocks) and scored against",
            "Django's French msgstr. Structure: cue numbers and timing, every tag, every link target as in the source.",
            "",
            "| format | sentences | segments | chrF | structure | low-confidence | s/segment |",
            "|---|---:|---:|---:|---|---:|---:|",
            *format_lines,
            "",
            f"Goal (halves >= 10 chrF apart): {'met' if row['high'] - row['low'] >= 10 else 'NOT met'} "
            f"({row['high'] - row['low']:+.1f}). Whole run: {seconds / 60:.1f} min.",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
