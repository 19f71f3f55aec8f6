"""What a long-lived thread's OpenMP workers cost another thread's decoding (engine/omp_pool.py).

One process, one model, `--threads` llama.cpp threads: the main thread takes a short reply
through the Engine (as the app's engine thread does for a chat), then a BatchedDecoder (its own
thread, as a translation's) generates; its aggregate tokens/s is measured as llama-batched-bench
measures S_TG. Each round does this twice: with the engine letting go of the main thread's OpenMP
workers after its reply (llamadesk's behaviour) and without (the engine's release replaced by a
no-op), in alternating order. Ratio = with / without, the median over rounds.

Writes the "## omp pool" section of bench/RESULTS.md.

    .venv/bin/python bench/omp_pool.py [--model gemma3-270m] [--threads 2] [--rounds 6] [--sequences 1,8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import command_line, update_section  # noqa: E402

from llamadesk.app.engine import llama_engine  # noqa: E402
from llamadesk.app.engine.batched_bench import measure_batched  # noqa: E402
from llamadesk.app.engine.types import LoadSettings, Sampling, TextPiece  # noqa: E402
from llamadesk.app.library.starters import starter_path  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--sequences", default="1,8")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    counts = [int(c) for c in args.sequences.split(",")]
    real_release = llama_engine.release_worker_threads
    settings = LoadSettings(
        n_ctx=1024, n_threads=args.threads, n_batch=512, kv_cache_type="f16", n_gpu_layers=0, flash_attn=True
    )
    speeds: dict[tuple[int, bool], list[float]] = {(n, released): [] for n in counts for released in (True, False)}
    with llama_engine.Engine.load(starter_path(args.model), settings) as engine:

        def run(n: int, released: bool) -> float:
            llama_engine.release_worker_threads = real_release if released else (lambda: False)
            reply = engine.stream_completion("The capital of France is", Sampling(temperature=0.0, max_tokens=16))
            assert "".join(e.text for e in reply if isinstance(e, TextPiece))
            with engine.batched_decoder(n, n_ctx=1024) as decoder:
                return measure_batched(decoder, 64, 64).generated_tokens_per_second

        for round_number in range(args.rounds):
            for n in counts:
                for released in (True, False) if round_number % 2 == 0 else (False, True):
                    speeds[(n, released)].append(run(n, released))
            print(f"round {round_number + 1}/{args.rounds}", file=sys.stderr)
    llama_engine.release_worker_threads = real_release

    lines = [
        f"Model `{args.model}`, {args.threads} llama.cpp threads on this machine's {len(os.sched_getaffinity(0))} "
        "CPUs. The main thread takes a 16-token reply through the Engine, then a BatchedDecoder (its own thread) "
        "generates 64 tokens per sequence after 64 prompt tokens: aggregate tokens/s (S_TG), with the engine "
        "releasing its thread's OpenMP workers after the reply and without, alternating, "
        f"{args.rounds} rounds.",
        "",
        "| sequences | released, tokens/s | kept, tokens/s | ratio (median of rounds) |",
        "|---:|---:|---:|---:|",
    ]
    for n in counts:
        ratios = [a / b for a, b in zip(speeds[(n, True)], speeds[(n, False)], strict=True)]
        lines.append(
            f"| {n} | {statistics.median(speeds[(n, True)]):.1f} | {statistics.median(speeds[(n, False)]):.1f} | "
            f"{statistics.median(ratios):.2f} |"
        )
    lines += ["", command_line("omp_pool.py", parser, args)]
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        update_section("omp pool", report)


if __name__ == "__main__":
    main()
