"""How many candidates `translate --candidates` should ask for: chrF against the count.

`--candidates N` keeps one of N answers per segment: greedy and sampled ones, most of them to the
usual prompt and the rest to prompts that also show the shipped corpus's three or five nearest
sentences (app/translate/candidates.py `CANDIDATE_PROMPTS`; until 2026-12-05 all N answered the
usual prompt).
More answers give the consensus more to agree on, and each costs about one more reply's generation.
This runs the real pipeline (SegmentTranslator with `candidates=N`, its candidates decoded side by
side on a batched decoder of 8 slots, as `llamadesk translate` does where `--parallel` is above 1)
on every message of both evaluation sets of bench/translate.py, for each count, with gemma3-270m on
one thread. The seeds are fixed, so each prompt's samples are the same draws at every count that
gives it as many (up to llama.cpp's rounding in a batch).

Writes the "## translate sample count" section of bench/RESULTS.md.

    .venv/bin/python bench/translate_sample_count.py [--counts 1,8,12,16] [--langs fr,es] [--sets django,sphinx]
        [--limit N] [--temperature 0.8] [--min-p 0.05]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import sacrebleu

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import command_line, update_section  # noqa: E402
from translate import EVAL_SETS  # noqa: E402

from llamadesk.app.engine.llama_engine import Engine  # noqa: E402
from llamadesk.app.engine.types import LoadSettings  # noqa: E402
from llamadesk.app.library.starters import starter_path  # noqa: E402
from llamadesk.app.translate import candidates, resolve_language, translator_for  # noqa: E402
from llamadesk.app.translate.candidates import DEFAULT_CANDIDATES  # noqa: E402
from llamadesk.app.translate.parallel import ParallelTranslators  # noqa: E402

SLOTS = 8  # translate --parallel's default where memory allows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1,8,12,16", help="candidates per segment to compare (1: the default)")
    parser.add_argument("--langs", default="fr,es")
    parser.add_argument("--sets", default="django,sphinx")
    parser.add_argument("--limit", type=int, help="segments per set and language (default: all)")
    parser.add_argument(
        "--temperature", type=float, default=candidates.SAMPLE_TEMPERATURE, help="the sampled candidates' temperature"
    )
    parser.add_argument("--min-p", type=float, default=candidates.SAMPLE_MIN_P, help="the sampled candidates' min-p")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    # The study's knobs: candidate_samplings reads these module settings each time it is called.
    candidates.SAMPLE_TEMPERATURE, candidates.SAMPLE_MIN_P = args.temperature, args.min_p
    english = resolve_language("en")
    begun = time.perf_counter()
    scores: dict[tuple[str, str, int], tuple[float, float]] = {}  # (set, lang, count) -> (chrF, s/segment)
    # batch_invariant as `translate` loads by default: otherwise a sampled candidate depends on what
    # shared its batches before (bench/translate_filing_day.py says more).
    settings = LoadSettings(n_ctx=2048, n_threads=1, batch_invariant=True)
    with Engine.load(starter_path("gemma3-270m"), settings) as engine:
        strategy = translator_for(engine).strategy
        for count in counts:
            with ParallelTranslators(engine, strategy, SLOTS, candidates=count) as parallel:
                translator = parallel.translators[0]
                for eval_set in args.sets.split(","):
                    rows = [json.loads(line) for line in EVAL_SETS[eval_set].read_text(encoding="utf-8").splitlines()]
                    for code in args.langs.split(","):
                        subset = [r for r in rows if r["target_lang"] == code][: args.limit]
                        target = resolve_language(code)
                        started = time.perf_counter()
                        outputs = [translator.translate(r["source"], english, target).translation for r in subset]
                        seconds = (time.perf_counter() - started) / max(len(subset), 1)
                        chrf = sacrebleu.corpus_chrf(outputs, [[r["reference"] for r in subset]]).score
                        scores[(eval_set, code, count)] = (chrf, seconds)
                        print(
                            f"{eval_set} {code} candidates={count}: chrF {chrf:.2f}, {seconds:.2f} s/segment",
                            flush=True,
                        )
    pairs = sorted({(s, lang) for s, lang, _ in scores})
    base = counts[0]
    lines = [
        f"gemma3-270m (Q4_K_M), 1 thread, context 2048, every message of bench/translate.py's sets "
        f"{args.sets.replace(',', ', ')} into {args.langs.replace(',', ', ')}; `translate --candidates N` "
        f"(N = 1: the default pipeline) with its candidates decoded side by side on a batched decoder of "
        f"{SLOTS} slots, one segment at a time, sampled at temperature {args.temperature} with min-p "
        f"{args.min_p}. chrF by sacrebleu (corpus); in brackets the change against "
        f"N = {base}. The default count of `--candidates` is {DEFAULT_CANDIDATES}.",
        "",
        "| set | lang | " + " | ".join(f"N = {c}" for c in counts) + " |",
        "|---|---|" + "---:|" * len(counts),
    ]
    for eval_set, code in pairs:
        first = scores[(eval_set, code, base)][0]
        cells = [
            f"{scores[(eval_set, code, c)][0]:.2f}"
            + ("" if c == base else f" ({scores[(eval_set, code, c)][0] - first:+.2f})")
            for c in counts
        ]
        lines.append(f"| {eval_set} | {code} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Seconds per segment: "
        + "; ".join(f"N = {c}: {sum(scores[(s, lang, c)][1] for s, lang in pairs) / len(pairs):.2f}" for c in counts)
        + f". Whole run: {(time.perf_counter() - begun) / 60:.1f} min.",
        "",
        command_line("translate_sample_count.py", parser, args),
    ]
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        update_section("translate sample count", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
