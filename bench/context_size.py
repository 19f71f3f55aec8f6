"""Generation speed by KV cache size at the same depth: what llama-bench's tiny context gives it.

bench/chat_path.py compares a chat reply with llama-bench's tg128 after the chat prompt's tokens
(`-d 38`). llama-bench sizes its context to the test, 38 + 128 cells (llama.cpp pads it to 256);
a chat has the context it was loaded with (8,192 cells by default for the starters). With flash
attention off, llama.cpp keeps the V cache transposed, one row per head dimension running over
every cell of the cache, so each layer's attention reads its values in 64-element pieces one row
of the whole cache apart (16 KiB at 8,192 cells) instead of one contiguous block: more pages and
less prefetching for the same work. Flash attention keeps V by cell and does not care.

This measures that alone: one process, one model, one context per size and kernel, the same
llama_decode loop on each (`depth` random prompt tokens, then `tokens` single-token steps, timed;
llama-bench's own loop, with llama.cpp's default batch sizes), in rotating order for `rounds`
rounds. A ratio is a context's tokens/s over the 256-cell context's of the same kernel in the same
round; the median over rounds, with a bootstrap 95% interval.

It touches llama_cpp directly: it measures llama.cpp, not llamadesk. Writes the "## context size"
section of bench/RESULTS.md.

    .venv/bin/python bench/context_size.py [--model smollm2] [--threads 1] [--rounds 12] [--sizes 256,2048,8192]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import llama_cpp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat_path import bootstrap_median_interval  # noqa: E402
from results_file import command_line, update_section  # noqa: E402

from llamadesk.app.library.starters import starter_path  # noqa: E402

SMALLEST = 256  # llama.cpp pads every context to a multiple of 256 cells
QUIET = llama_cpp.llama_log_callback(lambda *_: None)  # held here: llama.cpp keeps calling it


def make_context(model, cells: int, threads: int, flash_attn: bool):
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = cells
    params.n_threads = params.n_threads_batch = threads
    params.flash_attn_type = 1 if flash_attn else 0  # enabled / disabled, not auto
    params.no_perf = True
    context = llama_cpp.llama_init_from_model(model, params)
    if not context:
        raise SystemExit(f"llama.cpp could not make a context of {cells} cells")
    return context


def generation_speed(context, n_vocab: int, depth: int, tokens: int, rng: random.Random) -> float:
    """Tokens/s of `tokens` single-token steps after `depth` random prompt tokens, the cache emptied first."""
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(context), True)
    prompt = (llama_cpp.llama_token * depth)(*(rng.randrange(n_vocab) for _ in range(depth)))
    if llama_cpp.llama_decode(context, llama_cpp.llama_batch_get_one(prompt, depth)) != 0:
        raise SystemExit("llama_decode failed on the prompt")
    one = (llama_cpp.llama_token * 1)()
    started = time.perf_counter()
    for _ in range(tokens):
        one[0] = rng.randrange(n_vocab)
        if llama_cpp.llama_decode(context, llama_cpp.llama_batch_get_one(one, 1)) != 0:
            raise SystemExit("llama_decode failed")
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--depth", type=int, default=38, help="prompt tokens before the timed steps (the chat's)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--sizes", default="256,2048,8192")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    sizes = sorted({SMALLEST, *(int(s) for s in args.sizes.split(","))})
    path = starter_path(args.model)

    llama_cpp.llama_backend_init()
    llama_cpp.llama_log_set(QUIET, None)
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), llama_cpp.llama_model_default_params())
    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
    runs = [(size, fa) for fa in (False, True) for size in sizes]
    contexts = {run: make_context(model, run[0], args.threads, run[1]) for run in runs}
    rng = random.Random(0)
    for context in contexts.values():  # warm-up: pages in, caches filled
        generation_speed(context, n_vocab, args.depth, 16, rng)
    speeds: dict[tuple[int, bool], list[float]] = {run: [] for run in runs}
    started = time.perf_counter()
    for round_number in range(args.rounds):
        shift = round_number % len(runs)
        for run in runs[shift:] + runs[:shift]:
            speeds[run].append(generation_speed(contexts[run], n_vocab, args.depth, args.tokens, rng))
        print(f"round {round_number + 1}/{args.rounds}", file=sys.stderr)
    minutes = (time.perf_counter() - started) / 60

    lines = [
        f"Model `{args.model}` ({path.name}), {args.threads} thread(s), {args.rounds} rounds; {args.tokens} "
        f"single-token steps after {args.depth} random prompt tokens, in one process, one context per size "
        "and kernel (llama.cpp's default batch sizes, f16 cache), in rotating order. Ratio = tokens/s over the "
        f"{SMALLEST}-cell context's with the same kernel in the same round: median, bootstrap 95% interval.",
        "",
        "| flash attention | cells | tokens/s (median) | ratio to 256 cells | 95% interval |",
        "|---|---:|---:|---:|---|",
    ]
    for size, fa in runs:
        ratios = [a / b for a, b in zip(speeds[(size, fa)], speeds[(SMALLEST, fa)], strict=True)]
        low, high = bootstrap_median_interval(ratios)
        lines.append(
            f"| {'on' if fa else 'off'} | {size} | {statistics.median(speeds[(size, fa)]):.1f} | "
            f"{statistics.median(ratios):.3f} | {low:.3f} - {high:.3f} |"
        )
    lines += ["", f"{minutes:.1f} minutes. " + command_line("context_size.py", parser, args)]
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        update_section("context size", report)


if __name__ == "__main__":
    main()
