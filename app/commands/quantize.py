"""`llamadesk quantize`: a GGUF to a smaller type with llama.cpp's own quantizer."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from llamadesk.app.commands.options import add_json_option
from llamadesk.app.commands.table import format_table
from llamadesk.app.core.byte_sizes import format_bytes

if TYPE_CHECKING:
    from llamadesk.quantize.quant_types import QuantType

EXAMPLES = """examples:
  llamadesk quantize model-f16.gguf -t Q4_K_M            # writes model-Q4_K_M.gguf beside it
  llamadesk quantize model-f16.gguf -t Q8_0 -o small.gguf --threads 4
  llamadesk quantize model-f16.gguf -t auto --memory 4GB # the best type that fits 4 GB at --ctx
  llamadesk quantize model-f16.gguf -t IQ2_XS --imatrix model.imatrix
  llamadesk quantize tiny-llama-F16 -t Q8_0              # a library model: tiny-llama-Q8_0 joins the library
  llamadesk quantize --list-types

Quantize from the f16/bf16/f32 original: a file that is already quantized is refused unless
--allow-requantize, because rounding rounded weights again adds both errors together.
Types marked 'imatrix' need an importance matrix: `llamadesk imatrix MODEL --text FILE` (or
llama.cpp's llama-imatrix) writes one.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "quantize",
        help="quantize a GGUF model with llama.cpp",
        description="Quantize a GGUF file to a smaller type with llama.cpp's quantizer (llama_model_quantize).",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "input", metavar="IN.gguf", nargs="?", help="the model to quantize (f16, bf16 or f32): a file or a library name"
    )
    parser.add_argument("-t", "--type", dest="qtype", help="quantization type (see --list-types), or 'auto'")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        help="output file (default: IN's name with the type, beside a file; in the library for a library name)",
    )
    parser.add_argument("--threads", type=int, help="threads for quantizing (default: all hardware threads)")
    parser.add_argument("--force", action="store_true", help="overwrite the output if it exists")
    parser.add_argument("--allow-requantize", action="store_true", help="quantize a file that is already quantized")
    parser.add_argument(
        "--imatrix", type=Path, metavar="FILE", help="importance matrix from `llamadesk imatrix` or llama-imatrix"
    )
    parser.add_argument(
        "--memory", metavar="SIZE", help="with -t auto: memory to fit in, e.g. 4GB (default: this machine's)"
    )
    parser.add_argument("--ctx", type=int, help="with -t auto: context length to fit (default: the model's)")
    parser.add_argument("--list-types", action="store_true", help="list every quantization type and exit")
    add_json_option(parser)
    parser.set_defaults(handler=run)


def _list_types(as_json: bool) -> int:
    from llamadesk.quantize.quant_types import QUANT_TYPES

    if as_json:
        print(
            json.dumps(
                [
                    {
                        "name": q.name,
                        "ftype": q.ftype,
                        "bits_per_weight": q.bits_per_weight,
                        "needs_imatrix": q.needs_imatrix,
                        "alias_of": q.alias_of,
                        "description": q.description,
                    }
                    for q in QUANT_TYPES
                ],
                indent=2,
            )
        )
        return 0
    rows = [
        (q.name, f"{q.bits_per_weight:g}", "imatrix" if q.needs_imatrix else "", q.description) for q in QUANT_TYPES
    ]
    print(format_table(("TYPE", "BITS", "NEEDS", "DESCRIPTION"), rows))
    return 0


def _progress_bar():
    """A per-tensor progress bar on stderr (nothing when stderr is not a terminal)."""
    if not sys.stderr.isatty():
        return contextlib.nullcontext(None)  # and no rich import (~25 ms) for scripts
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[tensor]}"),
        transient=True,
    )


def _resolve_input(spec: str) -> tuple[Path, str | None]:
    """The file IN means (a path, or a library name as every -m takes) and the library name, if it was one.

    A file that exists under the path given is that file, without reading library.json (a damaged
    one refused `quantize ./model.gguf`). Any other spec is a library name first: REPO:QUANT and
    Ollama's hf.co/... names hold a '/', and taken for paths, their copy was written beside the
    file, into Ollama's blobs folder or the Hub's cache, where no listing shows it.
    """
    from llamadesk.app.library.catalog import looks_like_path, resolve_library_name, resolve_model

    given = Path(spec).expanduser()
    if looks_like_path(spec) and given.exists():
        return given, None
    named = resolve_library_name(spec)
    return (named, spec) if named is not None else (resolve_model(spec), None)


def _library_output(name: str, qtype: QuantType) -> Path:
    """Where a library model's quantized copy goes without -o: into the library's own folder under
    its name, since its file may sit in a package, the Hub's cache or another app's store."""
    from llamadesk.app.core.paths import models_dir
    from llamadesk.quantize.quantize_model import default_output

    file_stem = re.sub(r"[^\w.+-]", "-", name)  # REPO:QUANT and name:tag hold characters a file name should not
    return default_output(models_dir() / f"{file_stem}.gguf", qtype)


def run(args: argparse.Namespace) -> int:
    from llamadesk.app.core.errors import BadInputError
    from llamadesk.quantize.quant_types import find_quant_type
    from llamadesk.quantize.quantize_model import quantize_gguf

    if args.list_types:
        return _list_types(args.json)
    if args.input is None or args.qtype is None:
        raise BadInputError("give the model and a type: llamadesk quantize IN.gguf -t Q4_K_M (or --list-types)")
    input_path, library_name = _resolve_input(args.input)
    if args.qtype.lower() == "auto":
        # Only here: fitting reads the model's header (numpy, gguf), which quantizing itself does
        # while its child process starts.
        from llamadesk.quantize.memory_fit import choose_fitting_type, default_budget, parse_memory

        budget = parse_memory(args.memory) if args.memory is not None else default_budget()[0]
        qtype = choose_fitting_type(input_path, args.ctx, budget)
        print(f"llamadesk: -t auto chose {qtype.name} (fits {format_bytes(budget)})", file=sys.stderr)
    else:
        if args.memory is not None or args.ctx is not None:
            raise BadInputError("--memory and --ctx only apply with -t auto")
        qtype = find_quant_type(args.qtype)
    output = args.output
    if output is None and library_name is not None:
        output = _library_output(library_name, qtype)
    with _progress_bar() as bar:
        advance = None
        if bar is not None:
            task = bar.add_task("quantizing", total=None, tensor="")

            def advance(step) -> None:
                bar.update(task, completed=step.index - 1, total=step.total, tensor=step.name)

        output = quantize_gguf(
            input_path,
            output,
            qtype,
            threads=args.threads,
            force=args.force,
            allow_requantize=args.allow_requantize,
            imatrix=args.imatrix,
            progress=advance,
        )
    from llamadesk.app.core.gguf_file import model_parts, open_header

    size = output.stat().st_size
    parts = model_parts(input_path, open_header(input_path).metadata)
    input_bytes = sum(part.stat().st_size for part in parts)  # a split model: all its parts
    if args.json:
        print(json.dumps({"output": str(output), "type": qtype.name, "bytes": size, "input_bytes": input_bytes}))
    else:
        print(f"{output}  ({format_bytes(size)}, from {format_bytes(input_bytes)})")
    return 0
