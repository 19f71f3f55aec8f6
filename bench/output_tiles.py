"""What a batched step costs by the number of logits rows it asks for, and what padding them saves.

A step of the batched decoder samples one token per sequence, so it asks llama.cpp for one logits
row each: the output product (the hidden states times a vocabulary-sized matrix) for those rows.
On AVX-512 builds, llamafile's kernels take a Q8_0 matrix's rows four at a time and sweep the
matrix once more for any left over (engine/output_tiles.py). This script shows it in two parts:

1. llama.cpp alone: one step of `n` sequences, one token each with logits, for n = 1..12, after
   40 prompt tokens each, in a context with one KV stream per sequence (as `translate` makes),
   CPU time of the step (1 thread: llama.cpp computes in the calling thread), the median over
   interleaved rounds.
2. The BatchedDecoder on a batch-invariant engine (translate's), the same sequences with
   `output_tile` 1 and the engine's own (4 here), in alternating rounds: llama_decode CPU time of
   the whole run, the ratio, and whether every sequence said the same.

Writes the "## output tiles" section of bench/RESULTS.md.

    .venv/bin/python bench/output_tiles.py [--model gemma3-270m] [--rounds 8] [--sequences 5,6,7]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import command_line, update_section  # noqa: E402

from llamadesk.app.engine.batch_invariance import disable_tiled_products  # noqa: E402
from llamadesk.app.engine.types import LoadSettings, Sampling  # noqa: E402
from llamadesk.app.library.starters import starter_path  # noqa: E402

PROMPT_TOKENS = 40
MAX_ROWS = 12
PROMPTS = [
    "Translate into French: The file could not be saved because the disk is full.",
    "Translate into French: Enter a valid email address.",
    "Translate into French: This field is required.",
    "Translate into French: Ensure this value has at most 100 characters.",
    "Translate into French: The password is too similar to the username.",
    "Translate into French: Select a valid choice. That choice is not one of the available choices.",
    "Translate into French: Please correct the duplicate values below.",
    "Translate into French: The two password fields did not match.",
]


def step_costs(model_path: Path, rounds: int) -> dict[int, float]:
    """Median CPU seconds of one step with n logits rows (n sequences, one token each)."""
    import llama_cpp

    params = llama_cpp.llama_model_default_params()
    params.use_extra_bufts = False  # as translate's engine: weights as the file has them
    model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), params)
    context_params = llama_cpp.llama_context_default_params()
    context_params.n_ctx = 256 * MAX_ROWS
    context_params.n_batch = context_params.n_ubatch = 512
    context_params.n_seq_max = MAX_ROWS
    context_params.n_threads = context_params.n_threads_batch = 1
    context_params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
    context_params.kv_unified = False
    context_params.no_perf = True
    context = llama_cpp.llama_init_from_model(model, context_params)
    memory = llama_cpp.llama_get_memory(context)
    batch = llama_cpp.llama_batch_init(512, 0, 1)
    rng = random.Random(0)

    def decode(rows: list[tuple[int, int, int]]) -> float:  # (sequence, position, wants logits)
        for i, (sequence, position, logits) in enumerate(rows):
            batch.token[i] = rng.randrange(1000, 20000)
            batch.pos[i], batch.n_seq_id[i], batch.seq_id[i][0], batch.logits[i] = position, 1, sequence, logits
        batch.n_tokens = len(rows)
        started = time.thread_time()
        if llama_cpp.llama_decode(context, batch) != 0:
            raise SystemExit("llama_decode failed")
        return time.thread_time() - started

    for sequence in range(MAX_ROWS):
        decode([(sequence, p, 0) for p in range(PROMPT_TOKENS)])
    times: dict[int, list[float]] = {n: [] for n in range(1, MAX_ROWS + 1)}
    for round_number in range(rounds + 1):
        for n in range(1, MAX_ROWS + 1):
            seconds = decode([(s, PROMPT_TOKENS, 1) for s in range(n)])
            for sequence in range(n):
                llama_cpp.llama_memory_seq_rm(memory, sequence, PROMPT_TOKENS, -1)
            if round_number > 0:  # the first round warms up
                times[n].append(seconds)
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(context)
    llama_cpp.llama_model_free(model)
    return {n: statistics.median(values) for n, values in times.items()}


def decoder_runs(model_path: Path, counts: list[int], rounds: int, tokens: int):
    """llama_decode CPU seconds of the decoder's runs with tile 1 and the engine's, per sequence count."""
    import llama_cpp

    from llamadesk.app.engine.llama_engine import Engine

    spent = [0.0]
    decode = llama_cpp.llama_decode

    def timed(context, batch):
        started = time.thread_time()  # the decoder's own thread
        status = decode(context, batch)
        spent[0] += time.thread_time() - started
        return status

    llama_cpp.llama_decode = timed
    settings = LoadSettings(
        n_ctx=1024, n_threads=1, n_batch=63, kv_cache_type="f16", n_gpu_layers=0, flash_attn=True, batch_invariant=True
    )
    results = {}
    with Engine.load(model_path, settings) as engine:
        tile = engine.output_tile
        sampling = Sampling(temperature=0.0, max_tokens=tokens)
        for count in counts:
            prompts = [engine.tokenize(p) for p in PROMPTS[:count]]
            seconds: dict[int, list[float]] = {1: [], tile: []}
            texts: dict[int, list[str]] = {}
            for round_number in range(rounds):
                for output_tile in (1, tile) if round_number % 2 == 0 else (tile, 1):
                    decoder = engine.batched_decoder(count, 1024, cells_per_sequence=1024)
                    decoder.output_tile = output_tile
                    with decoder:
                        spent[0] = 0.0
                        with decoder.starting_together():
                            handles = [decoder.submit(p, sampling, ignore_end=True) for p in prompts]
                        texts[output_tile] = [h.result(timeout=600).text for h in handles]
                        seconds[output_tile].append(spent[0])
            results[count] = (statistics.median(seconds[1]), statistics.median(seconds[tile]), texts[1] == texts[tile])
    llama_cpp.llama_decode = decode
    return tile, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--sequences", default="5,6,7", help="sequence counts for part 2")
    parser.add_argument("--tokens", type=int, default=32, help="tokens each sequence generates in part 2")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    path = starter_path(args.model)
    disable_tiled_products()  # translate's kernels (batch_invariance.py), before the first decode
    os.environ.setdefault("LLAMA_LOG_LEVEL", "error")
    costs = step_costs(path, args.rounds)
    tile, runs = decoder_runs(path, [int(c) for c in args.sequences.split(",")], args.rounds, args.tokens)

    lines = [
        f"Model `{args.model}` ({path.name}), 1 thread, flash attention, a KV stream per sequence, weights not "
        f"repacked and llama.cpp's tiled K-quant products off (translate's kernels). CPU time of one step with n "
        f"sequences, one token each with logits, after {PROMPT_TOKENS} prompt tokens each; median of "
        f"{args.rounds} interleaved rounds.",
        "",
        "| logits rows | ms per step | ms per row |",
        "|---:|---:|---:|",
    ]
    lines += [f"| {n} | {cost * 1000:.1f} | {cost * 1000 / n:.1f} |" for n, cost in costs.items()]
    lines += [
        "",
        f"The BatchedDecoder with `output_tile` 1 and {tile} (this build's, engine/output_tiles.py) on the same "
        f"sequences ({args.tokens} greedy tokens each, translation prompts), alternating, {args.rounds} rounds; "
        "llama_decode CPU time of a run, median:",
        "",
        f"| sequences | tile 1, s | tile {tile}, s | ratio | same text |",
        "|---:|---:|---:|---:|---|",
    ]
    for count, (plain, padded, same) in runs.items():
        lines.append(f"| {count} | {plain:.2f} | {padded:.2f} | {padded / plain:.3f} | {'yes' if same else 'NO'} |")
    lines += ["", command_line("output_tiles.py", parser, args)]
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        update_section("output tiles", report)


if __name__ == "__main__":
    main()
