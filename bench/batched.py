"""Batched decoding against llama.cpp's llama-batched-bench, and translate --parallel against one at a time.

1. Aggregate generation tokens/s with 1, 4 and 8 sequences: llamadesk's BatchedDecoder (real
   greedy sampling and detokenizing per sequence, in Python) against `llama-batched-bench` (no
   sampling at all) on the same model, threads, context, batch, flash attention and unified KV
   cache, 64 random prompt tokens and 64 generated tokens per sequence. Runs alternate (ours,
   theirs, ours, ...) so a shared machine's noise hits both; the ratio is ours / theirs.
2. `llamadesk translate` of a 40-paragraph document (Django messages with French human
   translations, bench/data/translate_eval.jsonl) with --parallel 8 against --parallel 1: wall
   time and the time inside llama_decode (a probe wraps it in the translate process), chrF of each
   against the references, and how many paragraphs come out identical.
3. llama-batched-bench on the document's own shape: each sequence the new prompt tokens and the
   generated tokens of an average model call of the `--parallel 1` run (its llama_decode batch
   sizes, from the same probe), 1 and 8 sequences: what batching gives this work in llama.cpp's
   own loop, where every sequence starts together and all their prompts share one batch; once with
   llama.cpp's default kernels and once with the batch-invariant ones `translate` decodes on.
4. The same document into other languages (--other-languages, German and Spanish by default, with
   Django's own translations as references), --parallel 1 and 8 once each: whether batching's chrF
   difference leans one way or lands either side of zero.

Writes the "## batched" section of bench/RESULTS.md.

    .venv/bin/python bench/batched.py [--model gemma3-270m] [--threads 1] [--rounds 2] [--segments 40]
        [--other-languages de,es]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sacrebleu

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine import REPO, llama_tools_bin  # noqa: E402
from results_file import update_section  # noqa: E402

PARALLEL = (1, 4, 8)
PROMPT_TOKENS, GEN_TOKENS = 64, 64
N_BATCH = 512


N_CTX = max(PARALLEL) * (PROMPT_TOKENS + GEN_TOKENS)  # what llama-batched-bench needs for the most sequences


def run_ours(model_path: Path, threads: int) -> dict[int, float]:
    """Generation tokens/s per sequence count, measured as llama-batched-bench measures S_TG."""
    from llamadesk.app.engine.batched_bench import measure_batched
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import LoadSettings

    settings = LoadSettings(
        n_ctx=512, n_threads=threads, n_batch=N_BATCH, flash_attn=True, kv_cache_type="f16", n_gpu_layers=0
    )
    speeds = {}
    with Engine.load(model_path, settings) as engine:
        for n in PARALLEL:
            with engine.batched_decoder(n, n_ctx=N_CTX) as decoder:
                speeds[n] = measure_batched(decoder, PROMPT_TOKENS, GEN_TOKENS).generated_tokens_per_second
    return speeds


def batched_bench_rows(
    bench_bin: Path,
    model_path: Path,
    threads: int,
    n_ctx: int,
    npp: int,
    ntg: int,
    counts: tuple[int, ...],
    invariant: bool = False,
) -> dict[int, dict]:
    """llama-batched-bench's row per sequence count, with this script's batch, flash attention and unified cache.

    `invariant`: with the kernels `translate` decodes on by default (engine/batch_invariance.py):
    weights not repacked, tiled K-quant products off, at most UNTILED_ROWS tokens a weight pass.
    """
    from llamadesk.app.engine.batch_invariance import UNTILED_ROWS

    batch = UNTILED_ROWS if invariant else N_BATCH
    out = subprocess.run(
        [
            str(bench_bin), "-m", str(model_path), "-t", str(threads), "-c", str(n_ctx),
            "-b", str(batch), "-ub", str(batch), "-fa", "on", "-kvu", "-ngl", "0",
            "-npp", str(npp), "-ntg", str(ntg), "-npl", ",".join(map(str, counts)), "--output-format", "jsonl",
            *(["--no-repack"] if invariant else []),
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "GGML_CPU_TILED_MM": "0"} if invariant else None,
    )  # fmt: skip
    rows = [json.loads(line) for line in (out.stdout + out.stderr).splitlines() if line.startswith("{")]
    return {row["pl"]: row for row in rows}


def run_reference(bench_bin: Path, model_path: Path, threads: int) -> dict[int, float]:
    rows = batched_bench_rows(bench_bin, model_path, threads, N_CTX, PROMPT_TOKENS, GEN_TOKENS, PARALLEL)
    return {n: row["speed_tg"] for n, row in rows.items()}


def translation_document(segments: int, language: str = "fr") -> tuple[str, list[str]]:
    """The evaluation set's first `segments` English messages as one document, and their references in
    `language` (every language of the set has the same English messages)."""
    rows = [json.loads(line) for line in (REPO / "bench/data/translate_eval.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["target_lang"] == language][:segments]
    return "\n\n".join(r["source"] for r in rows) + "\n", [r["reference"] for r in rows]


# Runs `llamadesk translate` in this process (arguments after the first) and writes to the file named
# by the first argument every llama_decode's batch size and the seconds spent inside them: the
# document's shape, for llama-batched-bench to replay, and the time in model calls apart from
# the start (imports, model load) that both --parallel runs pay alike.
TRANSLATE_PROBE = """
import json, sys, time
import llama_cpp, llama_cpp.llama_cpp as raw
sizes, spent, decode = [], [0.0], raw.llama_decode
def counting(context, batch):
    sizes.append(batch.n_tokens)
    started = time.perf_counter()
    try:
        return decode(context, batch)
    finally:
        spent[0] += time.perf_counter() - started
raw.llama_decode = llama_cpp.llama_decode = counting
from llamadesk.app.cli import main
out, sys.argv = sys.argv[1], ["llamadesk", *sys.argv[2:]]
try:
    main()
finally:
    open(out, "w").write(json.dumps({"sizes": sizes, "decode_seconds": spent[0]}))
"""


@dataclass
class TranslateRun:
    seconds: float  # wall time of the command, the model load included
    translations: list[str]
    decode_seconds: float  # inside llama_decode
    batch_sizes: list[int]  # of every llama_decode, in order


def run_translate(
    document: Path,
    model: str,
    threads: int,
    parallel: int,
    kv_type: str = "f16",
    flash_attn: str = "on",
    language: str = "fr",
    reproducible: bool = True,
) -> TranslateRun:
    with tempfile.TemporaryDirectory() as tmp:
        probe_file = Path(tmp) / "probe.json"
        started = time.perf_counter()
        out = subprocess.run(
            [
                sys.executable, "-c", TRANSLATE_PROBE, str(probe_file),
                "translate", "--to", language, "--from", "en", str(document), "--json", "-m", model,
                "--threads", str(threads), "--batch", "512", "--kv-type", kv_type, "--gpu-layers", "0",
                "--flash-attn", flash_attn, "--parallel", str(parallel),
                "--reproducible" if reproducible else "--no-reproducible",
            ],
            check=True,
            capture_output=True,
            text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        probe = json.loads(probe_file.read_text())
    return TranslateRun(
        seconds,
        [segment["translation"] for segment in json.loads(out.stdout)["segments"]],
        probe["decode_seconds"],
        probe["sizes"],
    )


def document_shape(sizes: list[int]) -> tuple[float, float, int]:
    """(new prompt tokens, generated tokens) of an average model call of a `translate --parallel 1` run
    whose llama_decode batch sizes are `sizes`, and the number of calls. The first call is left out of
    the prompt average: it reads the few-shot examples every later call finds in the cache. A call's
    prompt is a run of batches of several tokens and its last token alone (token_loop.decode_prompt);
    each later single token is generated."""
    calls: list[list[int]] = []  # per call: its prompt batches, then its single tokens
    for i, size in enumerate(sizes):
        if size > 1 and (i == 0 or sizes[i - 1] == 1):
            calls.append([])
        if calls:
            calls[-1].append(size)
    prompt = [sum(s for s in call if s > 1) + 1 for call in calls[1:]]  # + the prompt's last token
    generated = [sum(1 for s in call if s == 1) - 1 for call in calls]
    return statistics.fmean(prompt), statistics.fmean(generated), len(calls)


def run_reference_shape(
    bench_bin: Path, model_path: Path, threads: int, npp: int, ntg: int, invariant: bool
) -> dict[int, float]:
    """llama-batched-bench's total tokens/s (prompt and generation, S) at 1 and 8 sequences of `npp` + `ntg`."""
    rows = batched_bench_rows(bench_bin, model_path, threads, 8 * (npp + ntg) + 256, npp, ntg, (1, 8), invariant)
    return {n: row["speed"] for n, row in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--threads", type=int, default=1, help="1: two llama.cpp threads crawl on a busy machine")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--segments", type=int, default=40, help="0: only the decoding comparison")
    parser.add_argument("--translate-rounds", type=int, default=1)
    parser.add_argument(
        "--spread",
        default="2,4",
        help="other --parallel values translated once each, to show how far chrF moves with the batches alone",
    )
    parser.add_argument(
        "--other-languages",
        default="de,es",
        help="the same document into these languages too, --parallel 1 and 8 once each: whether the chrF "
        "difference leans one way or wanders around zero",
    )
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from llamadesk.app.engine.batch_invariance import UNTILED_ROWS
    from llamadesk.app.library.catalog import resolve_model

    model_path = resolve_model(args.model)
    bench_bin = llama_tools_bin() / "llama-batched-bench"
    ours: dict[int, list[float]] = {n: [] for n in PARALLEL}
    theirs: dict[int, list[float]] = {n: [] for n in PARALLEL}
    for round_no in range(args.rounds):
        for target, runner in ((ours, run_ours), (theirs, lambda m, t: run_reference(bench_bin, m, t))):
            for n, speed in runner(model_path, args.threads).items():
                target[n].append(speed)
        print(f"decoding round {round_no + 1}/{args.rounds} done", file=sys.stderr)

    if args.segments <= 0:
        print(ours, theirs)
        return
    text, references = translation_document(args.segments)
    runs: dict[int, list[TranslateRun]] = {1: [], 8: []}
    outputs: dict[int, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        document = Path(tmp) / "document.md"
        document.write_text(text)
        for round_no in range(args.translate_rounds):
            for parallel in (1, 8):
                runs[parallel].append(run_translate(document, args.model, args.threads, parallel))
                outputs[parallel] = runs[parallel][-1].translations
            print(f"translate round {round_no + 1}/{args.translate_rounds} done", file=sys.stderr)
        npp, ntg, n_calls = document_shape(runs[1][0].batch_sizes)
        # Each round: llama.cpp's default kernels, then the batch-invariant ones translate decodes on.
        shape_speeds: dict[bool, dict[int, list[float]]] = {False: {1: [], 8: []}, True: {1: [], 8: []}}
        for _ in range(args.rounds):
            for invariant in (False, True):
                for n, speed in run_reference_shape(
                    bench_bin, model_path, args.threads, round(npp), max(1, round(ntg)), invariant
                ).items():
                    shape_speeds[invariant][n].append(speed)
        shape_gain = {
            invariant: statistics.fmean(speeds[8]) / statistics.fmean(speeds[1])
            for invariant, speeds in shape_speeds.items()
        }
        # Lockstep makes a run repeatable: a second --parallel 8 run must give the same paragraphs.
        repeat = run_translate(document, args.model, args.threads, 8).translations
        spread = [int(v) for v in args.spread.split(",") if v.strip()]
        for parallel in spread:
            outputs[parallel] = run_translate(document, args.model, args.threads, parallel).translations
        # One segment at a time again, with settings that are as exact as the default or more.
        equivalents = {
            setting: run_translate(document, args.model, args.threads, 1, *setting).translations
            for setting in (("f16", "off"), ("f32", "off"))
        }
        others: dict[str, dict[int, TranslateRun]] = {}
        for language in [v.strip() for v in args.other_languages.split(",") if v.strip()]:
            others[language] = {
                parallel: run_translate(document, args.model, args.threads, parallel, language=language)
                for parallel in (1, 8)
            }
    chrf = {p: sacrebleu.corpus_chrf(outputs[p], [references]).score for p in outputs}
    same = sum(a == b for a, b in zip(outputs[1], outputs[8], strict=True))
    repeated = sum(a == b for a, b in zip(repeat, outputs[8], strict=True))
    chrf_equivalent = {s: sacrebleu.corpus_chrf(out, [references]).score for s, out in equivalents.items()}

    lines = [
        f"Model `{args.model}` ({model_path.name}), {args.threads} thread(s), flash attention, f16 unified KV cache, "
        f"batch {N_BATCH}; {PROMPT_TOKENS} random prompt tokens and {GEN_TOKENS} generated per sequence; "
        f"{args.rounds} alternating rounds. Aggregate generation tokens/s (S_TG); "
        "ratio = llamadesk / llama-batched-bench.",
        "",
        "| sequences | llamadesk BatchedDecoder | llama-batched-bench | ratio |",
        "|---|---|---|---|",
    ]
    for n in PARALLEL:
        a, b = statistics.fmean(ours[n]), statistics.fmean(theirs[n])
        lines.append(f"| {n} | {a:.1f} | {b:.1f} | {a / b:.3f} |")
    wall = {p: statistics.fmean(run.seconds for run in runs[p]) for p in runs}
    in_calls = {p: statistics.fmean(run.decode_seconds for run in runs[p]) for p in runs}
    speedup, calls_speedup = wall[1] / wall[8], in_calls[1] / in_calls[8]
    default_gain, invariant_gain = shape_gain[False], shape_gain[True]
    lines += [
        "",
        "Goal: ratio >= 0.95 at each count. llamadesk samples greedily and detokenizes every sequence; "
        "llama-batched-bench samples nothing.",
        "",
        f"`llamadesk translate --to fr` of a {args.segments}-paragraph document (Django messages; French references), "
        f"{args.translate_rounds} round(s); wall time including the start (imports, model load), and the time "
        "inside llama_decode alone:",
        "",
        "| --parallel | seconds | in model calls | chrF |",
        "|---|---|---|---|",
        f"| 1 | {wall[1]:.1f} | {in_calls[1]:.1f} | {chrf[1]:.2f} |",
        f"| 8 | {wall[8]:.1f} | {in_calls[8]:.1f} | {chrf[8]:.2f} |",
        "",
        f"Speed-up {speedup:.2f}x in wall time, {calls_speedup:.2f}x in model calls (goal: llama-batched-bench's "
        f"own 8-sequence gain, {statistics.fmean(theirs[8]) / statistics.fmean(theirs[1]):.2f}x here); chrF "
        f"difference {chrf[8] - chrf[1]:+.2f} (goal: within 0.5); {same} of {len(references)} paragraphs identical.",
        "",
        f"llama-batched-bench on the document's own shape: the `--parallel 1` run made {n_calls} model calls "
        f"(segments, retries, pieces) of {npp:.1f} new prompt tokens (after the first call's few-shot examples) "
        f"and {ntg:.1f} generated tokens on average; `-npp {round(npp)} -ntg {max(1, round(ntg))}` "
        "(prompt and generation tokens/s, S, 1 and 8 sequences; llama.cpp's loop starts all eight together "
        "and reads their prompts in one batch):",
        "",
        "| kernels | 1 sequence | 8 | gain | translation's gain / it: wall, model calls |",
        "|---|---|---|---|---|",
        *(
            f"| {label} | {statistics.fmean(shape_speeds[invariant][1]):.1f} | "
            f"{statistics.fmean(shape_speeds[invariant][8]):.1f} | **{shape_gain[invariant]:.2f}x** | "
            f"{speedup / shape_gain[invariant]:.2f}, {calls_speedup / shape_gain[invariant]:.2f} |"
            for invariant, label in (
                (False, "llama.cpp's defaults (weights repacked, tiled products)"),
                (
                    True,
                    f"batch-invariant, as translate decodes (`--no-repack`, `GGML_CPU_TILED_MM=0`, "
                    f"batch {UNTILED_ROWS})",
                ),
            )
        ),
        "",
        f"Batch-invariant kernels give each token the same arithmetic alone and in company (so `--parallel 8` "
        f"gives `--parallel 1`'s paragraphs), at the price of the products llama.cpp speeds up for larger "
        f"batches: on this work they take batching's gain in llama.cpp's own loop from {default_gain:.2f}x to "
        f"{invariant_gain:.2f}x.",
        "",
        f"Repeatability: a second `--parallel 8` run gave {repeated} of {len(references)} paragraphs identical "
        "(the workers decode in lockstep, so batches follow the work, not the threads' timing).",
        "",
        "How far chrF moves when only the batches change (the same prompts; one run each): "
        + ", ".join(f"--parallel {p}: {chrf[p]:.2f} ({chrf[p] - chrf[1]:+.2f})" for p in sorted(chrf) if p != 1)
        + ".",
        "",
        "How far chrF moves with no batching at all, when only the arithmetic changes (`--parallel 1`; "
        "the f32 cache is the more exact): "
        + ", ".join(
            f"{kv} cache, flash attention {fa}: {score:.2f} ({score - chrf[1]:+.2f})"
            for (kv, fa), score in chrf_equivalent.items()
        )
        + ". A chrF difference within 0.5 on this document is below what equally exact settings give.",
        "",
    ]
    if others:
        lines += [
            "The same document into other languages (one run each of --parallel 1 and 8, wall time including "
            "the model load; their references are Django's own catalogs for those languages):",
            "",
            "| language | --parallel 1: s / chrF | --parallel 8: s / chrF | speed-up | chrF difference | "
            "paragraphs identical |",
            "|---|---|---|---|---|---|",
        ]
        differences = [chrf[8] - chrf[1]]
        for language, language_runs in others.items():
            language_references = translation_document(args.segments, language)[1]
            s1, s8 = language_runs[1].seconds, language_runs[8].seconds
            out1, out8 = language_runs[1].translations, language_runs[8].translations
            c1, c8 = (sacrebleu.corpus_chrf(out, [language_references]).score for out in (out1, out8))
            differences.append(c8 - c1)
            same_here = sum(a == b for a, b in zip(out1, out8, strict=True))
            lines.append(
                f"| {language} | {s1:.1f} / {c1:.2f} | {s8:.1f} / {c8:.2f} | {s1 / s8:.2f}x | {c8 - c1:+.2f} | "
                f"{same_here} of {len(out1)} |"
            )
        lines += [
            "",
            f"Mean chrF difference over fr and these: {statistics.fmean(differences):+.2f} "
            f"({', '.join(f'{d:+.2f}' for d in differences)}).",
            "",
        ]
    lines += [
        "Both runs put the same prompts to the model (a segment's context is the segment before it in its "
        "own paragraph, whatever --parallel; tests/test_translate_parallel.py checks it), and `translate` "
        "decodes batch-invariant on the CPU (engine/batch_invariance.py: a token's arithmetic is the same "
        "alone and beside others), so the answers are the same too. With `--no-reproducible` (llama.cpp's "
        "fastest kernel per batch) paragraphs differ where those kernels round a token decoded beside "
        "others differently from one decoded alone, which flips near-ties in greedy decoding "
        '(bench/RESULTS.md "parallel chrF").',
        "",
        "Why the document gains less than llama-batched-bench's 64 + 64 sequences: its segments are a sentence "
        "each, with a prompt of fixed examples that the sequential run keeps in the cache from one segment to "
        "the next (and the batched one shares between slots), so each model call reads a few dozen new prompt "
        "tokens and writes a short reply; batching multiplies a reply's tokens/s more than a prompt's. On that "
        "shape, with the kernels translate decodes on, llama.cpp's own loop gains the batch-invariant row's "
        "figure; the translation's segments end at different times, so each new one reads its prompt in a step "
        "of its own where llama.cpp's loop reads all eight together, and the wall time adds the start (imports, "
        "model load) that batching cannot shorten.",
        "",
        f"Command: `.venv/bin/python bench/batched.py --model {args.model} --threads {args.threads} "
        f"--rounds {args.rounds} --segments {args.segments} --translate-rounds {args.translate_rounds} "
        f"--spread {shlex.quote(args.spread)} --other-languages {shlex.quote(args.other_languages)}`",
    ]
    update_section("batched", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
