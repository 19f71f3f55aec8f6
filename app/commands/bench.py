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
"""


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
    add_load_options(parser)
    add_json_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from llamadesk.app.core.errors import BadInputError
    from llamadesk.app.engine.build_info import build_info
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.library.catalog import resolve_model

    if args.repetitions < 1 or args.n_prompt < 0 or args.n_gen < 0:
        raise BadInputError("-r must be at least 1, and -p and -n 0 or more")
    settings = load_settings(args)
    if settings.n_ctx is None:  # llama-bench sizes the context to the test, and so do we
        settings = dataclasses.replace(settings, n_ctx=max(args.n_prompt + args.n_gen, 1))
    with Engine.load(resolve_model(args.model), settings) as engine:
        results = engine.bench(args.n_prompt, args.n_gen, args.repetitions)
        summary, active = engine.summary, engine.settings
    backend = build_info().backend
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "model": summary.name,
                        "model_size": summary.file_size,
                        "model_n_params": summary.parameters,
                        "backend": backend,
                        "n_threads": active.n_threads,
                        "n_gpu_layers": active.n_gpu_layers,
                        "flash_attn": active.flash_attn,
                        "test": r.test,
                        "avg_ts": r.tokens_per_second_mean,
                        "stddev_ts": r.tokens_per_second_stdev,
                        "samples_ts": r.samples,
                    }
                    for r in results
                ],
                indent=2,
            )
        )
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
    print(format_table(("MODEL", "SIZE", "PARAMS", "BACKEND", "THREADS", "FA", "TEST", "T/S"), rows))
    return 0
