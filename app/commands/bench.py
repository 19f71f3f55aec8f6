"""`llamadesk bench`: prompt processing and generation speed, measured as llama-bench does."""

from __future__ import annotations

import argparse
import dataclasses
import json

from llamadesk.app.commands.options import add_json_option, add_load_options, add_model_option, load_settings
from llamadesk.app.commands.table import format_table
from llamadesk.app.core.byte_sizes import format_bytes

EXAMPLES = """examples:
  llamadesk bench -m smollm2
  llamadesk bench -m ./model.gguf -p 512 -n 128 -r 5 --threads 4 --json
  llamadesk bench -m gemma3-270m --batched 4      (the batched line with 4 sequences; 0 leaves it out)
  llamadesk bench -m smollm2 -p 0 -d 4096         (generation 4,096 tokens into a conversation)

Generation is also shown as a share of this machine's memory-bandwidth limit: the bytes of weights
one token reads against the read bandwidth measured here with the same number of threads.
"""
BATCHED_PROMPT, BATCHED_GEN = 64, 64  # per sequence, as the llama-batched-bench runs in bench/batched.py


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench",
        help="measure a model's speed on this machine",
        description="Prompt processing (pp) and generation (tg) tokens per second, like llama-bench.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_option(parser)
    parser.add_argument("-p", "--n-prompt", type=int, default=512, help="prompt tokens per pp run (default: 512)")
    parser.add_argument("-n", "--n-gen", type=int, default=128, help="generated tokens per tg run (default: 128)")
    parser.add_argument("-r", "--repetitions", type=int, default=5, help="runs per test (default: 5)")
    parser.add_argument(
        "-d",
        "--depth",
        type=int,
        default=0,
        help="tokens already in the cache before each run, as deep into a conversation (default: 0)",
    )
    parser.add_argument(
        "--batched",
        type=int,
        default=8,
        metavar="B",
        help=f"also decode B sequences together ({BATCHED_PROMPT} prompt + {BATCHED_GEN} generated tokens each), "
        "like llama-batched-bench (default: 8; 0 leaves it out)",
    )
    add_load_options(parser)
    add_json_option(parser)
    parser.set_defaults(handler=run)


def check_context_fits(path, n_ctx: int, sized_by: tuple[str, ...]) -> None:
    """Refuse a context whose memory (KV cache and llama.cpp's compute buffers) is not free.

    The engine checks the KV cache alone; a model with a small one passed it with -p 100000000,
    and llama.cpp's failure to create the context was reported as a damaged model, exit 1. The
    weights are not counted: the engine places them (on the GPU where there is one: counted as
    RAM, a model larger than the free RAM but not the GPU's was refused with "lower -p or -n") and
    says itself when they do not fit.
    """
    from llamadesk.app.core.errors import BadInputError
    from llamadesk.app.core.machine import machine_facts
    from llamadesk.app.core.memory_budget import estimate_memory
    from llamadesk.app.library.catalog import inspect_model

    summary = inspect_model(path)  # a split model's weights are in all its parts
    needed = estimate_memory(summary, summary.n_vocab, summary.tensor_bytes, n_ctx)
    context_bytes = needed.total - needed.weights
    available = machine_facts().available_ram
    if context_bytes > available:
        raise BadInputError(
            f"a context of {n_ctx} tokens ({' + '.join(sized_by)}) needs about {format_bytes(context_bytes)} for "
            f"{summary.path.name} (KV cache {format_bytes(needed.kv_cache)}, compute "
            f"{format_bytes(needed.compute)}), but only {format_bytes(available)} of memory is free; "
            f"lower {' or '.join(sized_by)}"
        )


def whole_model_header(path):
    """The first file's header with the tensors of a split model's other parts: the first part's
    alone made the bandwidth limit's "weights per token" a fraction of the model's."""
    from llamadesk.app.core.gguf_file import model_parts, open_header

    header = open_header(path)
    others = [t for part in model_parts(path, header.metadata)[1:] for t in open_header(part).tensors]
    return dataclasses.replace(header, tensors=header.tensors + others)


def run(args: argparse.Namespace) -> int:
    from llamadesk.app.core.errors import BadInputError
    from llamadesk.app.core.memory_bandwidth import measure_read_bandwidth, weight_bytes_per_token
    from llamadesk.app.engine.batched_bench import measure_batched
    from llamadesk.app.engine.build_info import build_info
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.library.catalog import resolve_model

    if args.repetitions < 1 or args.n_prompt < 0 or args.n_gen < 0 or args.depth < 0:
        raise BadInputError("-r must be at least 1, and -p, -n and -d 0 or more")
    if not 0 <= args.batched <= 64:
        raise BadInputError(f"--batched {args.batched}: give 0 (none) to 64 sequences")
    if args.n_prompt == 0 and args.n_gen == 0 and not args.batched:
        raise BadInputError("-p 0 -n 0 and no --batched leave nothing to measure; give -p or -n more than 0")
    settings = load_settings(args)
    sized_by = ("--ctx",)
    if settings.n_ctx is None:  # llama-bench sizes the context to the test, and so do we
        settings = dataclasses.replace(settings, n_ctx=max(args.depth + args.n_prompt + args.n_gen, 1))
        sized_by = ("-p", "-n", "-d")
    path = resolve_model(args.model)
    check_context_fits(path, settings.n_ctx, sized_by)
    with Engine.load(path, settings) as engine:
        results = engine.bench(args.n_prompt, args.n_gen, args.repetitions, args.depth)
        summary, active = engine.summary, engine.settings
        batched = None
        if args.batched:
            with engine.batched_decoder(args.batched, args.batched * (BATCHED_PROMPT + BATCHED_GEN)) as decoder:
                batched = measure_batched(decoder, BATCHED_PROMPT, BATCHED_GEN)
    weights = weight_bytes_per_token(whole_model_header(path))
    bandwidth = measure_read_bandwidth(active.n_threads)
    limit = bandwidth / weights  # tokens/s if every weight were read at full speed and nothing else took time
    backend = build_info().backend
    common = {
        "model": summary.name,
        "model_size": summary.file_size,
        "model_n_params": summary.parameters,
        "backend": backend,
        "n_threads": active.n_threads,
        "n_gpu_layers": active.n_gpu_layers,
        "flash_attn": active.flash_attn,
        "n_depth": args.depth,
    }
    report = [
        {
            **common,
            "test": r.test,
            "avg_ts": r.tokens_per_second_mean,
            "stddev_ts": r.tokens_per_second_stdev,
            "samples_ts": r.samples,
            **(_bandwidth_fields(r.tokens_per_second_mean, weights, bandwidth) if r.test.startswith("tg") else {}),
        }
        for r in results
    ]
    if batched is not None:
        report.append(
            {
                **common,
                "test": f"pp{batched.n_prompt}+tg{batched.n_gen}x{batched.n_sequences}",
                "n_sequences": batched.n_sequences,
                "speed_pp": batched.prompt_tokens_per_second,
                "speed_tg": batched.generated_tokens_per_second,
                "avg_ts": batched.generated_tokens_per_second,
                "samples_ts": [batched.generated_tokens_per_second],
            }
        )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    rows = [
        (
            summary.name,
            format_bytes(summary.file_size),
            summary.size_label,
            backend,
            active.n_threads,
            "on" if active.flash_attn else "off",
            r.test,
            f"{r.tokens_per_second_mean:.2f} ± {r.tokens_per_second_stdev:.2f}",
        )
        for r in results
    ]
    if rows:  # -p 0 -n 0 --batched B measures the batched line alone: no table, not its header alone
        print(format_table(("MODEL", "SIZE", "PARAMS", "BACKEND", "THREADS", "FA", "TEST", "T/S"), rows))
    for r in results:
        if r.test.startswith("tg"):
            print(
                f"{r.test}: {r.tokens_per_second_mean / limit:.0%} of the memory-bandwidth limit "
                f"({limit:.1f} t/s: {format_bytes(weights)} of weights per token, read at "
                f"{bandwidth / 1e9:.1f} GB/s by {active.n_threads} thread(s) here)"
            )
    if batched is not None:
        single = next((r.tokens_per_second_mean for r in results if r.test.startswith("tg")), None)
        gain = f", {batched.generated_tokens_per_second / single:.2f}x one sequence's tg" if single else ""
        print(
            f"batched (like llama-batched-bench): PP {batched.n_prompt}, TG {batched.n_gen}, B {batched.n_sequences}: "
            f"S_PP {batched.prompt_tokens_per_second:.2f} t/s, S_TG {batched.generated_tokens_per_second:.2f} t/s{gain}"
        )
    return 0


def _bandwidth_fields(tokens_per_second: float, weights: int, bandwidth: float) -> dict:
    limit = bandwidth / weights
    return {
        "weight_bytes_per_token": weights,
        "read_bandwidth_bytes_per_s": bandwidth,
        "bandwidth_limit_ts": limit,
        "bandwidth_share": tokens_per_second / limit,
    }
