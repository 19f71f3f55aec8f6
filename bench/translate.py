"""Translation quality of the starter model: a naive prompt against llamadesk's pipeline.

Both translate the same English messages from Django's catalogs (bench/data/translate_eval.jsonl,
built by bench/make_translate_eval.py), and from Sphinx's (translate_eval_sphinx.jsonl, another
project's messages and translators) into French, German and Spanish with gemma3-270m, greedily,
and are scored against the human translations with chrF (sacrebleu):

- naive: the plain prompt "English: {text}\\nFrench:" that a user would type, no protection.
  Scored twice from one generation: the model's whole continuation (what a completion call
  without a stop sequence returns) and only its first line (with a newline stop added).
- llamadesk: the translate pipeline (few-shot prompt, protected spans, checks, strict retry,
  piecewise fallback), one segment at a time, in three forms side by side: the default (fixed
  examples), with the nearest examples of the shipped corpus, and `--candidates` (the greedy
  answer and sampled ones, one kept; on the engine's single stream here, one after another).

Also reported: the share of segments that keep every placeholder of the source, empty outputs,
seconds per segment. Writes the "## translate" section of bench/RESULTS.md (bench/results_file.py).

    .venv/bin/python bench/translate.py [--limit N] [--langs fr,de,es] [--sets django,sphinx] [--no-naive]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import sacrebleu
from results_file import update_section  # bench/ is on sys.path when run as a script

from llamadesk.app.core.machine import machine_facts
from llamadesk.app.engine.llama_engine import Engine
from llamadesk.app.engine.types import LoadSettings
from llamadesk.app.library.starters import starter_path
from llamadesk.app.translate import EngineGenerator, SegmentTranslator, resolve_language, translator_for
from llamadesk.app.translate.candidates import DEFAULT_CANDIDATES
from llamadesk.app.translate.nearest_examples import shipped_corpus
from llamadesk.app.translate.prompts import Prompt
from llamadesk.app.translate.protection import find_spans
from llamadesk.app.translate.segment import OUTPUT_TOKENS_EXTRA, OUTPUT_TOKENS_PER_SOURCE_TOKEN

BENCH = Path(__file__).resolve().parent
EVAL_SETS = {
    "django": BENCH / "data" / "translate_eval.jsonl",
    "sphinx": BENCH / "data" / "translate_eval_sphinx.jsonl",
}


def placeholders_kept(source: str, output: str) -> bool:
    """Every span of the source is in the output (a quoted placeholder counts without its quotes,
    which a translation may rightly change to « » or „ “)."""
    spans = [
        source[s + 1 : e - 1] if kind == "quoted-placeholder" else source[s:e] for s, e, kind in find_spans(source)
    ]
    return all(output.count(span) >= spans.count(span) for span in set(spans))


class RawLines(EngineGenerator):
    """The engine without llamadesk's line stop: the naive call returns all it generates."""

    def generate(self, prompt, max_tokens, on_text=None):
        from llamadesk.app.engine.types import Sampling, TextPiece

        sampling = Sampling(**{**self.sampling.__dict__, "max_tokens": max_tokens})
        return "".join(
            e.text for e in self.engine.stream_tokens(self.prompt_tokens(prompt), sampling) if isinstance(e, TextPiece)
        )


def run_naive(generator: RawLines, rows: list[dict], target_name: str) -> tuple[list[str], list[str], float]:
    full, first_line = [], []
    started = time.perf_counter()
    for row in rows:
        prompt = Prompt("completion", text=f"English: {row['source']}\n{target_name}:")
        budget = generator.count_tokens(row["source"]) * OUTPUT_TOKENS_PER_SOURCE_TOKEN + OUTPUT_TOKENS_EXTRA
        raw = generator.generate(prompt, budget)
        full.append(raw.strip())
        first_line.append(next((line.strip() for line in raw.split("\n") if line.strip()), ""))
    return full, first_line, time.perf_counter() - started


def pipelines(engine) -> dict[str, SegmentTranslator]:
    """The default pipeline (fixed examples, one answer), with nearest examples, and with --candidates."""
    default = translator_for(engine)
    corpus = shipped_corpus()
    return {
        "llamadesk": default,
        "llamadesk-nearest-examples": SegmentTranslator(default.generator, default.strategy, corpus),
        "llamadesk-candidates": SegmentTranslator(
            default.generator, default.strategy, candidates=DEFAULT_CANDIDATES, candidate_examples=corpus
        ),
    }


def run_pipeline(translator: SegmentTranslator, rows: list[dict], target) -> tuple[list, float]:
    english = resolve_language("en")
    started = time.perf_counter()
    results = [translator.translate(row["source"], english, target) for row in rows]
    return results, time.perf_counter() - started


def score(outputs: list[str], rows: list[dict]) -> dict:
    refs = [row["reference"] for row in rows]
    return {
        "chrf": sacrebleu.corpus_chrf(outputs, [refs]).score,
        "kept": sum(placeholders_kept(r["source"], o) for r, o in zip(rows, outputs, strict=False)) / len(rows),
        "empty": sum(1 for o in outputs if not o.strip()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, help="segments per language (default: all)")
    parser.add_argument("--langs", default="fr,de,es")
    parser.add_argument("--sets", default="django,sphinx", help="evaluation sets: django, sphinx or both")
    parser.add_argument("--no-naive", action="store_true", help="leave out the naive prompt (the pipelines only)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--section", default="translate", help="the section of RESULTS.md to write")
    parser.add_argument("--dump", type=Path, help="write every segment's outputs and problems to this JSONL file")
    # One thread: on a shared 2-core machine, llama.cpp with 2 threads runs ~10x slower than with one
    # as soon as anything else is busy (its threads wait for each other at every step).
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    begun = time.perf_counter()
    machine = machine_facts()
    table = []  # (set, lang, system, n, chrf, kept, empty, s/segment)
    details = {}
    with Engine.load(starter_path("gemma3-270m"), LoadSettings(n_ctx=2048, n_threads=args.threads)) as engine:
        generator = RawLines(engine)
        systems = pipelines(engine)
        for eval_set in args.sets.split(","):
            rows = [json.loads(line) for line in EVAL_SETS[eval_set].read_text(encoding="utf-8").splitlines()]
            for code in args.langs.split(","):
                target = resolve_language(code)
                subset = [r for r in rows if r["target_lang"] == code][: args.limit]
                outputs: dict[str, tuple[list[str], float]] = {}
                if not args.no_naive:
                    full, first_line, naive_seconds = run_naive(generator, subset, target.name)
                    outputs["naive"] = (full, naive_seconds)
                    outputs["naive-first-line"] = (first_line, naive_seconds)
                for name, translator in systems.items():
                    results, seconds = run_pipeline(translator, subset, target)
                    outputs[name] = ([r.translation for r in results], seconds)
                    if name == "llamadesk-candidates":
                        details[(eval_set, code)] = {
                            "retried": sum(1 for r in results if r.attempts > 1),
                            "piecewise": sum(1 for r in results if r.fallback == "piecewise"),
                            "source_kept": sum(1 for r in results if r.fallback == "source-kept"),
                        }
                        if args.dump:
                            with args.dump.open("a", encoding="utf-8") as dump:
                                for row, result in zip(subset, results, strict=True):
                                    record = {**row, "set": eval_set, **result.to_json()}
                                    dump.write(json.dumps(record, ensure_ascii=False) + "\n")
                for system, (texts, seconds) in outputs.items():
                    s = score(texts, subset)
                    per_segment = seconds / len(subset)
                    table.append((eval_set, code, system, len(subset), s["chrf"], s["kept"], s["empty"], per_segment))
                    print(
                        f"{eval_set} {code} {system:27s} chrF {s['chrf']:5.1f}  placeholders kept {s['kept']:6.1%}  "
                        f"empty {s['empty']}  {per_segment:.2f} s/segment",
                        flush=True,
                    )
    if not args.no_write:
        update_section(args.section, render(table, details, args, machine, time.perf_counter() - begun))
    return 0


def render(table, details, args, machine, seconds: float) -> str:
    command = (
        "make .venv/.test-installed && .venv/bin/python bench/translate.py"
        + (f" --limit {args.limit}" if args.limit else "")
        + (f" --langs {args.langs}" if args.langs != "fr,de,es" else "")
        + (f" --sets {args.sets}" if args.sets != "django,sphinx" else "")
        + (" --no-naive" if args.no_naive else "")
        + (f" --section {args.section}" if args.section != "translate" else "")
    )
    lines = [
        "English -> French/German/Spanish with the gemma3-270m starter (Q4_K_M), greedy, on two evaluation",
        "sets built by bench/make_translate_eval.py: `django` (bench/data/translate_eval.jsonl, 40 English",
        "messages of Django 5.2 with their human translations from Django's own catalogs, BSD-3-Clause; 14",
        "with placeholders) and `sphinx` (bench/data/translate_eval_sphinx.jsonl, messages of Sphinx 9.0 with",
        "the translations its wheel ships, BSD-2-Clause: 40 French, 27 German, 40 Spanish).",
        "chrF by sacrebleu (corpus level)."
        + (
            ""
            if args.no_naive
            else " `naive` is the prompt `English: {text}\\nFrench:` and all the model generates;"
            " `naive-first-line` is the same with generation cut at the first line."
        ),
        "`llamadesk` is the translate pipeline (four fixed example sentences, one answer: the default);",
        "`llamadesk-nearest-examples` adds the three sentences of the shipped example corpus nearest to",
        "each segment (Django's contrib catalogs without the core catalog's messages);",
        f"`llamadesk-candidates` is `--candidates`: {DEFAULT_CANDIDATES} answers, the default's and others sampled",
        "from its prompt or answering prompts with the 3 or 5 nearest examples too (candidates.CANDIDATE_PROMPTS),",
        "one kept (fewer problems, then the target language, then chrF consensus).",
        '"kept" = share of segments keeping every placeholder.',
        "",
        f"Machine: {machine.physical_cores} physical cores, {platform.machine()}, shared with other jobs; llama.cpp on "
        f"{args.threads} thread(s) (two threads crawl when the cores are busy). Command: `{command}`",
        "",
        "| set | lang | system | segments | chrF | placeholders kept | empty | s/segment |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for eval_set, code, system, n, chrf, kept, empty, per_segment in table:
        lines.append(
            f"| {eval_set} | {code} | {system} | {n} | {chrf:.1f} | {kept:.0%} | {empty} | {per_segment:.2f} |"
        )
    lines.append("")
    by = {(e, c, s): (chrf, kept, empty, sec) for e, c, s, _, chrf, kept, empty, sec in table}
    met_naive, met_gain = True, True
    for eval_set, code in details:
        ours = by[(eval_set, code, "llamadesk")]
        nearest, candidates = (
            by[(eval_set, code, "llamadesk-nearest-examples")],
            by[(eval_set, code, "llamadesk-candidates")],
        )
        line = (
            f"- {eval_set} {code}: over the default pipeline, nearest examples {nearest[0] - ours[0]:+.1f} chrF "
            f"at {nearest[3] / ours[3]:.1f}x its time, candidates {candidates[0] - ours[0]:+.1f} chrF at "
            f"{candidates[3] / ours[3]:.1f}x its time"
        )
        met_gain = met_gain and max(nearest[0], candidates[0]) - ours[0] >= 5
        if (eval_set, code, "naive") in by:
            line += f", {ours[0] - by[(eval_set, code, 'naive')][0]:+.1f} over naive"
            met_naive = met_naive and ours[0] >= by[(eval_set, code, "naive")][0] + 10 and ours[1] == 1 and not ours[2]
        d = details[(eval_set, code)]
        lines.append(
            line + f"; retried {d['retried']}, piecewise fallback {d['piecewise']}, source kept {d['source_kept']}"
        )
    lines += ["", f"Whole run (load, every system, every set and language): {seconds / 60:.1f} min.", ""]
    if not args.no_naive:
        lines.append(
            f"Goal (chrF >= naive + 10, every placeholder kept, no empty output): {'met' if met_naive else 'NOT met'}."
        )
    lines.append(
        f"Goal (+5 chrF over the default pipeline from nearest examples or candidates, every set and language): "
        f"{'met' if met_gain else 'NOT met'}."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
