"""Which way of choosing among several translations of a segment could reach +5 chrF (issue #19).

bench/translate.py measures the pipelines as they ship; `--candidates` (three prompt variants,
consensus choice) gained on Spanish but not on French. This study asks what any choice among
candidates could gain, and which scores come near it, before another chooser is built:

- candidates per segment: the default pipeline (fixed examples), with the nearest examples of
  the shipped corpus, with the nearest examples alone (the three prompts `--candidates` asks
  with), and the default prompt sampled twice (temperature 0.6 and 0.9, fixed seeds);
  each is the pipeline's finished output (checks, retry, fallback included);
- choices: the default's own answer; consensus (candidates.choose, minimum Bayes risk by chrF);
  the model's mean token log-probability of the candidate (forward); the mean log-probability of
  the source given the candidate under the reverse prompt (back-translation, scored by
  Engine.continuation_logprobs: the source decoded in one batch with an output at every
  position); forward + back-translation; and the oracle, the candidate closest to the human
  translation, which no chooser can beat with these candidates.

Corpus chrF (sacrebleu) of each choice per set, on French (the language the goal is not met on),
with gemma3-270m on 1 thread. Writes the "## translate rerank" section of bench/RESULTS.md.

    .venv/bin/python bench/translate_rerank.py [--limit 12] [--langs fr] [--sets django,sphinx]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import sacrebleu

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import update_section  # noqa: E402
from translate import EVAL_SETS  # noqa: E402

from llamadesk.app.engine.llama_engine import Engine  # noqa: E402
from llamadesk.app.engine.types import LoadSettings, Sampling  # noqa: E402
from llamadesk.app.library.starters import starter_path  # noqa: E402
from llamadesk.app.translate import EngineGenerator, SegmentTranslator, resolve_language, translator_for  # noqa: E402
from llamadesk.app.translate.candidates import Candidate, char_f_score, choose  # noqa: E402
from llamadesk.app.translate.detection import reads_as_source  # noqa: E402
from llamadesk.app.translate.nearest_examples import shipped_corpus  # noqa: E402
from llamadesk.app.translate.prompts import TranslationRequest  # noqa: E402

SAMPLED = {"sampled-0.6": (0.6, 11), "sampled-0.9": (0.9, 12)}
SCORER_CTX = 2048


class NearestOnly(SegmentTranslator):
    """The nearest examples without the fixed ones: the third prompt variant of `--candidates`."""

    def _ask(self, request, on_text):
        return super()._ask(replace(request, fixed_examples=False), on_text)


def candidate_translators(engine) -> dict[str, SegmentTranslator]:
    default = translator_for(engine)
    corpus = shipped_corpus()
    translators = {
        "default": default,
        "nearest": SegmentTranslator(default.generator, default.strategy, corpus),
        "nearest-only": NearestOnly(default.generator, default.strategy, corpus),
    }
    for name, (temperature, seed) in SAMPLED.items():
        sampling = Sampling(temperature=temperature, top_k=40, top_p=0.95, min_p=0.05, seed=seed, logprobs=True)
        translators[name] = SegmentTranslator(EngineGenerator(engine, sampling), default.strategy)
    return translators


def back_translation_logprob(scorer: Engine, strategy, source_text: str, candidate: str, source, target) -> float:
    """Mean log p(source tokens | the reverse few-shot prompt with the candidate as its text).

    On an engine of its own, so its context keeps the reverse prompt's examples between calls.
    """
    if not candidate.strip():
        return -math.inf
    prompt = scorer.tokenize(strategy.build(TranslationRequest(candidate, target, source)).text, add_bos=True)
    answer = scorer.tokenize(f" {source_text}\n", add_bos=False)
    if len(prompt) + len(answer) > scorer.n_ctx:
        return -math.inf
    scores = scorer.continuation_logprobs(prompt, answer)
    return sum(scores) / len(scores)


def candidates_of(engine, args, seconds: dict[str, float]) -> list[dict]:
    """Every candidate of every segment, with the model's mean token log-probability of each."""
    english = resolve_language("en")
    translators = candidate_translators(engine)
    rows_out = []
    for eval_set in args.sets.split(","):
        rows = [json.loads(line) for line in EVAL_SETS[eval_set].read_text(encoding="utf-8").splitlines()]
        for code in args.langs.split(","):
            target = resolve_language(code)
            for row in [r for r in rows if r["target_lang"] == code][: args.limit]:
                texts, forward = {}, {}
                for name, translator in translators.items():
                    started = time.perf_counter()
                    result = translator.translate(row["source"], english, target)
                    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
                    texts[name] = result.translation
                    forward[name] = result.mean_logprob if result.mean_logprob is not None else -math.inf
                rows_out.append({"set": eval_set, "lang": code, **row, "texts": texts, "fwd": forward, "bt": {}})
                print(eval_set, code, json.dumps(texts, ensure_ascii=False)[:200], flush=True)
    return rows_out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=12, help="segments per set and language")
    parser.add_argument("--langs", default="fr")
    parser.add_argument("--sets", default="django,sphinx")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--skip-back-translation", action="store_true", help="leave the back-translation score out")
    parser.add_argument("--dump", type=Path, help="write every segment's candidates and scores to this JSONL file")
    parser.add_argument("--from-dump", type=Path, help="take the candidates from an earlier --dump, score them again")
    args = parser.parse_args()
    begun = time.perf_counter()
    model = starter_path("gemma3-270m")
    seconds: dict[str, float] = {}
    with Engine.load(model, LoadSettings(n_ctx=2048, n_threads=args.threads)) as engine:
        strategy = translator_for(engine).strategy
        if args.from_dump:
            rows_out = [json.loads(line) for line in args.from_dump.read_text(encoding="utf-8").splitlines()]
        else:
            rows_out = candidates_of(engine, args, seconds)
    if not args.skip_back_translation:
        # An engine of its own: its context keeps the reverse prompt's examples between calls.
        with Engine.load(model, LoadSettings(n_ctx=SCORER_CTX, n_threads=args.threads)) as scorer:
            started = time.perf_counter()
            english = resolve_language("en")
            for row in rows_out:
                target = resolve_language(row["lang"])
                row["bt"] = {
                    name: back_translation_logprob(scorer, strategy, row["source"], text, english, target)
                    for name, text in row["texts"].items()
                }
            seconds["back-translation scoring"] = time.perf_counter() - started
    if args.dump:
        args.dump.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows_out), encoding="utf-8")
    table = evaluate(rows_out)
    report = render(table, seconds, len(rows_out), args, time.perf_counter() - begun)
    print(report)
    if not args.no_write:
        update_section("translate rerank", report)
    return 0


def consensus(texts: dict[str, str], name: str) -> float:
    """Mean chrF of one candidate against the others (what candidates.choose ranks by)."""
    others = [other for other in texts if other != name]
    return sum(char_f_score(texts[name], texts[other]) for other in others) / len(others)


def choices(row: dict) -> dict[str, str]:
    names = list(row["texts"])
    texts = row["texts"]
    candidates = [
        Candidate(
            texts[n],
            (),
            bool(texts[n]) and reads_as_source(texts[n], resolve_language("en"), resolve_language(row["lang"])),
            row["fwd"][n],
        )
        for n in names
    ]

    def best(score) -> str:
        return texts[max(names, key=score)]

    return {
        "default pipeline (today)": texts["default"],
        "consensus (candidates.choose)": texts[names[choose(candidates)]],
        "forward log-probability": best(lambda n: row["fwd"][n]),
        **(
            {
                "back-translation log-probability": best(lambda n: row["bt"][n]),
                "forward + back-translation": best(lambda n: row["fwd"][n] + row["bt"][n]),
                "consensus + 0.2 x back-translation": best(lambda n: consensus(texts, n) + 0.2 * row["bt"][n]),
            }
            if row["bt"]
            else {}
        ),
        "oracle (closest to the human translation)": best(lambda n: char_f_score(texts[n], row["reference"])),
    }


def evaluate(rows: list[dict]) -> list[tuple[str, str, str, float]]:
    table = []
    for eval_set in sorted({r["set"] for r in rows}):
        for code in sorted({r["lang"] for r in rows if r["set"] == eval_set}):
            subset = [r for r in rows if r["set"] == eval_set and r["lang"] == code]
            picked = [choices(r) for r in subset]
            refs = [[r["reference"] for r in subset]]
            for name in picked[0]:
                chrf = sacrebleu.corpus_chrf([p[name] for p in picked], refs).score
                table.append((eval_set, code, name, chrf))
    return table


def render(table, seconds: dict[str, float], n_rows: int, args, total: float) -> str:
    baseline = {(s, c): chrf for s, c, name, chrf in table if name.startswith("default")}
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"gemma3-270m, {args.threads} thread(s), {args.limit} segments per set; candidates per segment: the default "
        "pipeline, with the nearest examples, with the nearest examples alone (the three prompts of `--candidates`), "
        "and the default prompt sampled at temperature 0.6 and 0.9 (seeds 11, 12). "
        "chrF by sacrebleu (corpus level); delta against the default pipeline.",
        "",
        "| set | lang | choice | chrF | delta |",
        "|---|---|---|---:|---:|",
    ]
    for eval_set, code, name, chrf in table:
        lines.append(f"| {eval_set} | {code} | {name} | {chrf:.1f} | {chrf - baseline[(eval_set, code)]:+.1f} |")
    lines += ["", "Time per segment, s: " + ", ".join(f"{k} {v / n_rows:.2f}" for k, v in seconds.items()) + "."]
    lines += [f"Whole run: {total / 60:.1f} min.", ""]
    command = f".venv/bin/python bench/translate_rerank.py --limit {args.limit} --langs {args.langs} --sets {args.sets}"
    lines += [f"Command: `{command}`"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
