"""Generation speed by thread count: is llamadesk's default (one per physical/performance core) the fastest?

Loads the model once per thread count and measures generation (tg) the way `llamadesk bench`
does (Engine.bench); the thread counts are interleaved round by round so that the noise of a
shared machine hits them alike. llama-bench runs the same counts as the reference. Reports each
count's speed as a ratio to the fastest, and whether the default is within 5% of it. Writes the
"## threads" section of bench/RESULTS.md.

    .venv/bin/python bench/threads.py [--model smollm2] [--rounds 4] [--n-gen 64] [--max-threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import update_section  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
GOAL = 0.95  # the default must reach 95% of the fastest thread count


def llama_bench() -> Path:
    out = subprocess.run(
        ["bash", str(REPO / "bench/build_llama_tools.sh"), sys.executable], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1]) / "llama-bench"


def reference(model_path: str, counts: list[int], n_gen: int, reps: int) -> dict[int, list[float]]:
    out = subprocess.run(
        [
            str(llama_bench()),
            "-m",
            model_path,
            "-t",
            ",".join(map(str, counts)),
            "-p",
            "0",
            "-n",
            str(n_gen),
            "-r",
            str(reps),
            "-o",
            "json",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return {row["n_threads"]: row["samples_ts"] for row in json.loads(out.stdout)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--n-gen", type=int, default=64)
    parser.add_argument("--max-threads", type=int, help="highest count to try (default: 2 x logical cores)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()

    from llamadesk.app.core.machine import machine_facts
    from llamadesk.app.engine.fitted_settings import choose_threads
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import LoadSettings
    from llamadesk.app.library.catalog import resolve_model

    # The default as Engine.load picks it: after watching how many cores other programs keep busy.
    machine = machine_facts(measure_busy=True)
    load_before = os.getloadavg()[0]
    default, why = choose_threads(machine, None)
    counts = list(range(1, (args.max_threads or 2 * machine.logical_cores) + 1))
    path = resolve_model(args.model)
    engines = {t: Engine.load(path, LoadSettings(n_threads=t, n_ctx=args.n_gen + 16)) for t in counts}
    samples: dict[int, list[float]] = {t: [] for t in counts}
    try:
        for _ in range(args.rounds):
            for t in counts:
                (result,) = engines[t].bench(n_prompt=0, n_gen=args.n_gen, repetitions=2)
                samples[t] += result.samples
    finally:
        for engine in engines.values():
            engine.close()
    ref = reference(str(path), counts, args.n_gen, args.rounds * 2)

    means = {t: statistics.fmean(s) for t, s in samples.items()}
    ref_means = {t: statistics.fmean(s) for t, s in ref.items()}
    best = max(means, key=means.get)
    ref_best = max(ref_means, key=ref_means.get)
    rows = []
    for t in counts:
        mark = " (default)" if t == default else ""
        rows.append(
            f"| {t}{mark} | {means[t]:.1f} ± {statistics.stdev(samples[t]):.1f} | {means[t] / means[best]:.3f} "
            f"| {ref_means[t]:.1f} ± {statistics.stdev(ref[t]):.1f} | {ref_means[t] / ref_means[ref_best]:.3f} |"
        )
    ratio = means[default] / means[best]
    verdict = "met" if ratio >= GOAL else "NOT met"
    body = "\n".join(
        [
            f"Model `{args.model}` ({path.name}), tg{args.n_gen}, {args.rounds} interleaved rounds x 2 repetitions "
            f"per thread count. Machine: {machine.cpu_model or 'unknown CPU'}, {machine.physical_cores} physical / "
            f"{machine.logical_cores} logical cores, shared with other work (load average {load_before:.1f} before, "
            f"{os.getloadavg()[0]:.1f} after). Tokens per second (mean ± stdev); "
            "ratio = speed / the fastest count's speed.",
            "",
            "| threads | llamadesk tg t/s | ratio to fastest | llama-bench tg t/s | ratio to llama-bench's fastest |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Default: {default} threads ({why}; {machine.busy_cores:.1f} cores busy when it was chosen); "
            f"fastest: {best} threads (llama-bench's fastest: {ref_best}). "
            f"Default / fastest = {ratio:.3f}; goal >= {GOAL} {verdict}.",
            "",
            f"Command: `.venv/bin/python bench/threads.py --model {args.model} "
            f"--rounds {args.rounds} --n-gen {args.n_gen}"
            + (f" --max-threads {args.max_threads}" if args.max_threads else "")
            + "`",
        ]
    )
    print(body)
    if not args.no_write:
        update_section("threads", body)


if __name__ == "__main__":
    main()
