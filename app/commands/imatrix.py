"""`llamadesk imatrix`: an importance matrix for the low-bit quantization types."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXAMPLES = """examples:
  llamadesk imatrix model-f16.gguf --text book.txt -o model.imatrix
  llamadesk quantize model-f16.gguf -t IQ2_XS --imatrix model.imatrix

The text should look like what the model will read (prose, code, your language); a few thousand
tokens already help. The file is in llama-imatrix's GGUF format, so llama.cpp's tools read it too.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "imatrix",
        help="compute an importance matrix from a text (for IQ1/IQ2/IQ3_XXS/Q2_K_S)",
        description="Run the model over a text and record, for every weight matrix, how large each input "
        "column's activations are (as llama-imatrix does). Low-bit types use it to spend "
        "their bits on the columns that matter.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="the unquantized model (f16/bf16/f32 GGUF) or a model name")
    parser.add_argument("--text", type=Path, required=True, metavar="FILE", help="plain UTF-8 text to run")
    parser.add_argument("-o", "--output", type=Path, help="output file (default: MODEL's name with .imatrix)")
    parser.add_argument(
        "--ctx", type=int, help="tokens per chunk (default: 512, as llama-imatrix, or the model's context if shorter)"
    )
    parser.add_argument("--threads", type=int, help="CPU threads (default: one per physical core)")
    parser.add_argument("--force", action="store_true", help="overwrite the output if it exists")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from llamadesk.app.core.errors import BadInputError
    from llamadesk.app.core.paths import other_apps_store
    from llamadesk.app.core.value_ranges import THREADS
    from llamadesk.app.library.catalog import resolve_model
    from llamadesk.quantize.importance_matrix import compute_imatrix

    if args.threads is not None:  # as chat and quantize do: past ggml's thread table llama.cpp crashes
        THREADS.check(args.threads, "--threads")
    model = resolve_model(args.model)
    store = other_apps_store(model)
    if args.output is None and store is not None:  # beside the blob is the other app's folder
        raise BadInputError(f"{model} is in {store}'s store, where llamadesk writes nothing; give -o FILE")
    output = args.output or model.with_suffix(".imatrix")

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\rchunk {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    print(compute_imatrix(model, args.text, output, args.ctx, args.threads, args.force, progress))
    return 0
