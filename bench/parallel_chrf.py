"""Does `translate --parallel` cost quality? chrF of --parallel 8 against --parallel 1 over many documents.

bench/batched.py times `llamadesk translate --parallel 8` against `--parallel 1` on one 40-paragraph
document and finds chrF a point higher or lower per language: batching changes llama.cpp's
rounding (section "batch numerics"), which flips near-ties in greedy decoding, and a flipped
paragraph moves a 40-paragraph document's chrF by a fraction of a point either way. One document
cannot tell such noise from a cost. This one asks the question of every document the evaluation
sets make (both sets of bench/translate.py, each language with human references: Django's French,
German and Spanish, Sphinx's French, German and Spanish), with the real CLI, the same settings on
both sides (gemma3-270m, one thread, batch 512, f16 cache, flash attention), and reports:

- per document: chrF of each run, the difference, and how many paragraphs come out identical;
- over all documents: the mean difference, with a 95% interval from a paired bootstrap that
  resamples each document's paragraphs (both runs' answers to a paragraph stay together).

Only chrF is read here, not time, so it may run beside other work. Writes the "## parallel chrF"
section of bench/RESULTS.md.

    .venv/bin/python bench/parallel_chrf.py [--model gemma3-270m] [--threads 1] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sacrebleu

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batched import run_translate  # noqa: E402
from results_file import command_line, update_section  # noqa: E402
from translate import EVAL_SETS  # noqa: E402

DOCUMENTS = (("django", "fr"), ("django", "de"), ("django", "es"), ("sphinx", "fr"), ("sphinx", "de"), ("sphinx", "es"))


def document_rows(eval_set: str, language: str) -> list[dict]:
    """The set's messages into `language` that make one paragraph each (no blank line inside)."""
    rows = [json.loads(line) for line in EVAL_SETS[eval_set].read_text(encoding="utf-8").splitlines()]
    return [r for r in rows if r["target_lang"] == language and "\n" not in r["source"].strip()]


def chrf(outputs: list[str], references: list[str]) -> float:
    return sacrebleu.corpus_chrf(outputs, [references]).score


def paired_bootstrap(documents: list[tuple[list[str], list[str], list[str]]], resamples: int, seed: int = 0):
    """95% interval of the mean over documents of chrF(parallel 8) - chrF(parallel 1), paragraphs resampled."""
    rng = random.Random(seed)
    means = []
    for _ in range(resamples):
        differences = []
        for one, eight, references in documents:
            picks = [rng.randrange(len(references)) for _ in references]
            differences.append(
                chrf([eight[i] for i in picks], [references[i] for i in picks])
                - chrf([one[i] for i in picks], [references[i] for i in picks])
            )
        means.append(statistics.fmean(differences))
    means.sort()
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument(
        "--no-reproducible",
        dest="reproducible",
        action="store_false",
        help="both runs with translate --no-reproducible (llama.cpp's fastest kernel per batch)",
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    begun = time.perf_counter()
    documents, rows_out = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for eval_set, language in DOCUMENTS:
            rows = document_rows(eval_set, language)
            document = Path(scratch) / f"{eval_set}-{language}.txt"
            document.write_text("\n\n".join(r["source"].strip() for r in rows) + "\n", encoding="utf-8")
            references = [r["reference"] for r in rows]
            one = run_translate(
                document, args.model, args.threads, 1, language=language, reproducible=args.reproducible
            ).translations
            eight = run_translate(
                document, args.model, args.threads, 8, language=language, reproducible=args.reproducible
            ).translations
            if not len(one) == len(eight) == len(references):
                answers = f"{len(one)} / {len(eight)} answers"
                raise SystemExit(f"{eval_set} {language}: {len(references)} paragraphs, {answers}")
            documents.append((one, eight, references))
            a, b = chrf(one, references), chrf(eight, references)
            same = sum(x == y for x, y in zip(one, eight, strict=True))
            rows_out.append((eval_set, language, len(references), a, b, same))
            print(f"{eval_set} {language}: {a:.2f} -> {b:.2f}, {same} of {len(references)} identical", flush=True)
    mean = statistics.fmean(b - a for *_, a, b, _ in rows_out)
    low, high = paired_bootstrap(documents, args.resamples)
    paragraphs = sum(n for _, _, n, *_ in rows_out)
    identical = sum(s for *_, s in rows_out)
    lines = [
        f"`llamadesk translate` with `--parallel 1` and `--parallel 8`, model `{args.model}`, {args.threads} "
        f"thread(s), batch 512, f16 cache, flash attention, "
        f"{'batch-invariant decoding (the default)' if args.reproducible else '`--no-reproducible`'}, "
        "one run each, on every document the evaluation "
        "sets make (each set's messages into one language, one paragraph per message, human references). "
        "chrF by sacrebleu (corpus).",
        "",
        "| set | language | paragraphs | chrF --parallel 1 | chrF --parallel 8 | difference | paragraphs identical |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for eval_set, language, n, a, b, same in rows_out:
        lines.append(f"| {eval_set} | {language} | {n} | {a:.2f} | {b:.2f} | {b - a:+.2f} | {same} |")
    lines += [
        "",
        f"**Mean difference over the {len(rows_out)} documents: {mean:+.2f} chrF** (95% interval {low:+.2f} to "
        f"{high:+.2f}, paired bootstrap of paragraphs, {args.resamples} resamples); {identical} of {paragraphs} "
        f"paragraphs identical. Goal (issue #18): within 0.5. {(time.perf_counter() - begun) / 60:.1f} minutes.",
        "",
        command_line("parallel_chrf.py", parser, args),
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        update_section("parallel chrF", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
