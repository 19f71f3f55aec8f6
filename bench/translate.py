"""Translation quality of the starter model: a naive prompt against llamadesk's pipeline.

Both translate the same English messages from Django's catalogs (bench/data/translate_eval.jsonl,
built by bench/make_translate_eval.py) into French, German and Spanish with gemma3-270m,
greedily, and are scored against Django's human translations with chrF (sacrebleu):

- naive: the plain prompt "English: {text}\\nFrench:" that a user would type, no protection.
  Scored twice from one generation: the model's whole continuation (what a completion call
  without a stop sequence returns) and only its first line (with a newline stop added).
- llamadesk: the translate pipeline (few-shot prompt, protected spans, checks, strict retry,
  piecewise fallback), one segment at a time.

Also reported: the share of segments that keep every placeholder of the source, empty outputs,
seconds per segment. Writes the "## translate" section of bench/RESULTS.md (bench/results_file.py).

    .venv/bin/python bench/translate.py [--limit N] [--langs fr,de,es]
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
from llamadesk.app.translate.prompts import Prompt
from llamadesk.app.translate.protection import find_spans
from llamadesk.app.translate.segment import OUTPUT_TOKENS_EXTRA, OUTPUT_TOKENS_PER_SOURCE_TOKEN

BENCH = Path(__file__).resolve().parent
DATA = BENCH / "data" / "translate_eval.jsonl"


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
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--dump", type=Path, help="write every segment's outputs and problems to this JSONL file")
    # One thread: on a shared 2-core machine, llama.cpp with 2 threads runs ~10x slower than with one
    # as soon as anything else is busy (its threads wait for each other at every step).
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    begun = time.perf_counter()
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    machine = machine_facts()
    with Engine.load(starter_path("gemma3-270m"), LoadSettings(n_ctx=2048, n_threads=args.threads)) as engine:
        generator = RawLines(engine)
        translator = translator_for(engine)
        table = []
        details = {}
        for code in args.langs.split(","):
            target = resolve_language(code)
            subset = [r for r in rows if r["target_lang"] == code][: args.limit]
            results, pipeline_seconds = run_pipeline(translator, subset, target)
            full, first_line, naive_seconds = run_naive(generator, subset, target.name)
            ours = [r.translation for r in results]
            if args.dump:
                with args.dump.open("a", encoding="utf-8") as dump:
                    for row, result, naive_out in zip(subset, results, first_line, strict=False):
                        dump.write(
                            json.dumps({**row, "naive_first_line": naive_out, **result.to_json()}, ensure_ascii=False)
                            + "\n"
                        )
            scores = {
                "naive": score(full, subset),
                "naive-first-line": score(first_line, subset),
                "llamadesk": score(ours, subset),
            }
            details[code] = {
                "retried": sum(1 for r in results if r.attempts > 1),
                "piecewise": sum(1 for r in results if r.fallback == "piecewise"),
                "source_kept": sum(1 for r in results if r.fallback == "source-kept"),
            }
            for system, s in scores.items():
                seconds = (pipeline_seconds if system == "llamadesk" else naive_seconds) / len(subset)
                table.append((code, system, len(subset), s["chrf"], s["kept"], s["empty"], seconds))
                print(
                    f"{code} {system:17s} chrF {s['chrf']:5.1f}  placeholders kept {s['kept']:6.1%}  "
                    f"empty {s['empty']}  {seconds:.2f} s/segment",
                    flush=True,
                )
            gain = scores["llamadesk"]["chrf"] - scores["naive"]["chrf"]
            gain_line = scores["llamadesk"]["chrf"] - scores["naive-first-line"]["chrf"]
            print(
                f"{code} gain: +{gain:.1f} chrF over naive, +{gain_line:.1f} over naive-first-line; {details[code]}",
                flush=True,
            )
            for row, naive_out, ours_out in list(zip(subset, first_line, ours, strict=False))[:3]:
                print(
                    f"   {row['source']!r}\n     naive: {naive_out!r}\n     ours:  {ours_out!r}\n"
                    f"     ref:   {row['reference']!r}"
                )
    if not args.no_write:
        update_section("translate", render(table, details, args, machine, time.perf_counter() - begun))
    return 0


def render(table, details, args, machine, seconds: float) -> str:
    command = (
        "make .venv/.test-installed && .venv/bin/python bench/translate.py"
        + (f" --limit {args.limit}" if args.limit else "")
        + (f" --langs {args.langs}" if args.langs != "fr,de,es" else "")
    )
    lines = [
        "English -> French/German/Spanish with the gemma3-270m starter (Q4_K_M), greedy, on the",
        "evaluation set bench/data/translate_eval.jsonl (40 English messages of Django 5.2 with their",
        "human translations from Django's own catalogs, BSD-3-Clause; 14 of them with placeholders).",
        "chrF by sacrebleu (corpus level). `naive` is the prompt `English: {text}\\nFrench:` and all the",
        "model generates; `naive-first-line` is the same with generation cut at the first line;",
        '`llamadesk` is the translate pipeline. "kept" = share of segments keeping every placeholder.',
        "",
        f"Machine: {machine.physical_cores} physical cores, {platform.machine()}, shared with other jobs; llama.cpp on "
        f"{args.threads} thread(s) (two threads crawl when the cores are busy). Command: `{command}`",
        "",
        "| lang | system | segments | chrF | placeholders kept | empty | s/segment |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for code, system, n, chrf, kept, empty, seconds in table:
        lines.append(f"| {code} | {system} | {n} | {chrf:.1f} | {kept:.0%} | {empty} | {seconds:.2f} |")
    lines.append("")
    by = {(c, s): chrf for c, s, _, chrf, *_ in table}
    for code in details:
        lines.append(
            f"- {code}: llamadesk {by[(code, 'llamadesk')] - by[(code, 'naive')]:+.1f} chrF over naive, "
            f"{by[(code, 'llamadesk')] - by[(code, 'naive-first-line')]:+.1f} over naive-first-line; "
            f"retried {details[code]['retried']}, piecewise fallback {details[code]['piecewise']}, "
            f"source kept {details[code]['source_kept']}"
        )
    met = all(
        by[(code, "llamadesk")] >= by[(code, "naive")] + 10
        and next(k for c, sy, _, _, k, *_ in table if (c, sy) == (code, "llamadesk")) == 1.0
        and next(e for c, sy, _, _, _, e, _ in table if (c, sy) == (code, "llamadesk")) == 0
        for code in details
    )
    lines += ["", f"Whole run (load, both systems, {len(details)} languages): {seconds / 60:.1f} min."]
    lines += [
        "",
        "Goals (chrF >= naive + 10, every placeholder kept, no empty output): "
        f"{'met' if met else 'NOT met'} for {', '.join(details)}.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
