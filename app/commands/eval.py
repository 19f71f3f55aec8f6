"""`llamadesk eval`: a model's perplexity on a text, and with --base what quantization cost."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DESCRIPTION = """Measure how well a model predicts a text, exactly as llama-perplexity does (so the numbers
compare with llama.cpp's): the text is cut into chunks of --ctx tokens and the second half of each
chunk is scored.

Cross-entropy is the loss the model was trained on: the mean of -ln p(next token), in nats.
Perplexity is its exponential: roughly how many tokens the model is hesitating between; lower is
better. With --base (the unquantized original) it also reports the KL divergence of the model's
next-token distribution from the base's (mean and 99th percentile; 0 = identical) and how often
both rank the same token first (top-1 agreement)."""

EXAMPLES = """examples:
  llamadesk eval model-Q4_K_M.gguf --text book.txt
  llamadesk eval model-Q4_K_M.gguf --text book.txt --base model-f16.gguf --save
  llamadesk eval smollm2 --text notes.txt --ctx 256 --json
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "eval",
        help="perplexity of a model, and KL divergence to its original",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="a .gguf file, or a model name from `llamadesk models`")
    parser.add_argument("--text", type=Path, required=True, metavar="FILE", help="plain UTF-8 text to score")
    parser.add_argument(
        "--ctx",
        type=int,
        help="tokens per chunk (default: 512, as llama-perplexity, or the model's context if shorter)",
    )
    parser.add_argument("--base", metavar="BASE", help="the unquantized model to compare with (KL divergence)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: one per physical core)")
    parser.add_argument("--save", action="store_true", help="save the result beside the model (MODEL.gguf.eval.json)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def _report(result) -> str:
    lines = [
        f"{result.model}",
        f"  text: {result.text} ({result.chunks} chunks of {result.ctx} tokens, {result.scored_tokens} tokens scored)",
        f"  cross-entropy: {result.cross_entropy:.4f} nats/token",
        f"  perplexity:    {result.perplexity:.4f}",
    ]
    if result.base is not None:
        lines += [
            f"  vs base {result.base} (perplexity {result.base_perplexity:.4f}):",
            f"  mean KLD:      {result.kld_mean:.6f}",
            f"  99% KLD:       {result.kld_p99:.6f}",
            f"  top-1 agree:   {100 * result.top1_agreement:.2f}%",
        ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from llamadesk.app.core.value_ranges import THREADS
    from llamadesk.app.library.catalog import resolve_model
    from llamadesk.quantize.evaluation import check_can_save_evaluation, evaluate, save_evaluation

    if args.threads is not None:  # as chat and quantize do: past ggml's thread table llama.cpp crashes
        THREADS.check(args.threads, "--threads")
    model = resolve_model(args.model)
    base = resolve_model(args.base) if args.base else None
    if args.save:
        check_can_save_evaluation(model)

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\rscoring chunk {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    from llamadesk.app.commands.signal_wake import signals_wake
    from llamadesk.app.engine.stop_flag import StopFlag

    stop = StopFlag()  # Ctrl-C mid-chunk: the chunk's decode stops where it is, not a minute later
    with signals_wake(stop.set):
        result = evaluate(model, args.text, args.ctx, base, args.threads, progress, stop)
    # Printed first: a save that fails all the same (the disk filled meanwhile) loses no result.
    print(json.dumps(result.to_json(), indent=2, allow_nan=False) if args.json else _report(result), flush=True)
    if args.save:
        saved = save_evaluation(result)
        print(f"llamadesk: saved to {saved}", file=sys.stderr)
    return 0
