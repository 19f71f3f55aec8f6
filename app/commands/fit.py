"""`llamadesk fit`: which quantization of a model fits in this machine's memory."""

from __future__ import annotations

import argparse
import json

from llamadesk.app.commands.options import add_json_option
from llamadesk.app.commands.table import format_table
from llamadesk.app.core.byte_sizes import format_bytes

EXAMPLES = """examples:
  llamadesk fit model-f16.gguf                    # this machine's memory, the model's context
  llamadesk fit model-f16.gguf --memory 4GB --ctx 8192
  llamadesk fit smollm2 --json

Memory = weights (llama.cpp's exact size for the type) + KV cache (f16, --ctx tokens) + compute
buffers. `llamadesk quantize IN -t auto` picks the best of Q8_0 > Q6_K > Q5_K_M > ... > Q2_K that fits.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "fit",
        help="memory each quantization type needs, and which fit",
        description="For every quantization type: its size for this model, the memory it needs at a "
        "context length, and whether that fits this machine (or --memory).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="a .gguf file (ideally the f16 original), or a model name")
    parser.add_argument(
        "--memory", metavar="SIZE", help="memory to fit in, e.g. 4GB or 512MiB (default: this machine's)"
    )
    parser.add_argument("--ctx", type=int, help="context length in tokens (default: the model's trained context)")
    add_json_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from llamadesk.app.library.catalog import resolve_model
    from llamadesk.quantize.memory_fit import auto_choice, default_budget, fit_table, parse_memory, whole_model_summary

    model = resolve_model(args.model)
    budget, source = (parse_memory(args.memory), "--memory") if args.memory is not None else default_budget()
    rows = fit_table(model, args.ctx, budget)
    best = auto_choice(rows, whole_model_summary(model).tensor_bytes)
    if args.json:
        print(
            json.dumps(
                {
                    "model": str(model),
                    "budget_bytes": budget,
                    "budget_source": source,
                    "auto_choice": best,
                    "types": [r.to_json() for r in rows],
                },
                indent=2,
            )
        )
        return 0
    table = [
        (
            r.qtype,
            "" if r.bits_per_weight is None else f"{r.bits_per_weight:.2f}",
            "-" if r.weights_bytes is None else format_bytes(r.weights_bytes),
            "-" if r.memory_bytes is None else format_bytes(r.memory_bytes),
            "yes" if r.fits else "no",
            ("imatrix " if r.needs_imatrix else "") + r.note,
            "<- auto" if r.qtype == best else "",
        )
        for r in rows
    ]
    print(f"{model}: budget {format_bytes(budget)} ({source})")
    print(format_table(("TYPE", "BITS/W", "WEIGHTS", "MEMORY", "FITS", "NOTE", ""), table))
    return 0
