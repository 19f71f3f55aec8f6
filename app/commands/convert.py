"""`llamadesk convert`: a PyTorch/safetensors checkpoint (folder or Hub repo id) to a GGUF."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llamadesk.app.commands.options import add_json_option
from llamadesk.app.commands.table import format_table
from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import BadInputError
from llamadesk.app.library.registry import record_made_model
from llamadesk.convert import ConversionPlan, plan_conversion, resolve_source, write_gguf
from llamadesk.convert.output_types import OUTTYPE_CHOICES
from llamadesk.convert.source_location import looks_like_repo_id
from llamadesk.convert.verify import VERIFY_CONTEXT, verify_against_source

EXAMPLES = """examples:
  llamadesk convert ./SmolLM2-135M-Instruct                 # into the library, type auto
  llamadesk convert ./Llama-2-7b-hf -o llama2.gguf --outtype q8_0
  llamadesk convert HuggingFaceTB/SmolLM2-135M-Instruct --outtype f16 --verify
  llamadesk convert ./checkpoint --dry-run                  # print the plan, write nothing
  llamadesk convert ./SmolLM2-135M-Instruct --quantize Q4_K_M   # checkpoint to Q4_K_M in one step
  llamadesk convert ./my-lora --base ./SmolLM2-135M-Instruct -o my-lora.gguf   # a PEFT LoRA adapter
  llamadesk convert ./SmolLM2-135M-Instruct --lora ./my-lora:0.8 --quantize Q4_K_M   # merged into the base

SRC is a folder with config.json + model.safetensors / pytorch_model.bin (sharded or not), or
Meta's consolidated.NN.pth + params.json, or a PEFT LoRA adapter folder (adapter_config.json +
adapter_model.safetensors: it becomes a GGUF adapter for `chat --lora`), or a Hub repo id (only
the files conversion needs are downloaded). Pickled .bin/.pth files are read without torch by an
unpickler that accepts only tensors: a checkpoint that tries to run code is refused (exit 2).

--outtype: f32, f16, bf16, q8_0, or auto (default: the checkpoint's 16-bit type; f16 for f32
checkpoints). Norms and other 1-D tensors always stay f32.

--quantize TYPE goes on to any llama.cpp type (see `llamadesk quantize --list-types`) through an
f16/bf16 intermediate that is deleted afterwards unless --keep is given.

--verify checks the new GGUF before it gets its final name (a failing file is not kept, exit 1):
  1. a multilingual sample (English, French, German, Chinese, Japanese, Russian, Arabic, code,
     emoji) tokenized by llama.cpp and by the source tokenizer run by its own library
     (`tokenizers` for tokenizer.json, `sentencepiece` for tokenizer.model, both installed with
     llamadesk) must give identical ids;
  2. llama.cpp's logits on a short prompt must match a plain numpy forward pass over the source
     checkpoint's own tensors (no torch needed; little memory; seconds on small models, minutes
     on 7B ones).
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "convert",
        help="convert a PyTorch/safetensors checkpoint to GGUF (no torch needed)",
        description=(
            "Convert a checkpoint to GGUF: Llama 1/2/3.x, Mistral, SmolLM, TinyLlama, Qwen2/2.5, Qwen3,\n"
            "Gemma 2, Gemma 3 (text, and the multimodal 4B-27B's text model), Phi-3/3.5 mini and Phi-4-mini."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="SRC", help="checkpoint folder or Hub repo id (owner/name)")
    parser.add_argument("-o", "--output", type=Path, help="output .gguf (default: the library's models folder)")
    parser.add_argument("--outtype", choices=OUTTYPE_CHOICES, default="auto", help="tensor type (default: auto)")
    parser.add_argument("--force", action="store_true", help="overwrite the output if it exists")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (tensors, types, size); write nothing")
    parser.add_argument(
        "--verify", action="store_true", help="check tokens and logits against the source before keeping the file"
    )
    parser.add_argument(
        "--pre-tokenizer",
        metavar="NAME",
        help="llama.cpp pre-tokenizer name for a tokenizer.json llamadesk does not recognise (check with --verify)",
    )
    parser.add_argument("--quantize", metavar="TYPE", help="quantize the result to TYPE (e.g. Q4_K_M) in the same run")
    parser.add_argument(
        "--base",
        metavar="BASE",
        help="SRC is a LoRA adapter: the model it was trained on (folder, GGUF or repo id; default: the one it names)",
    )
    parser.add_argument(
        "--lora",
        action="append",
        metavar="ADAPTER_DIR[:SCALE]",
        help="merge a PEFT LoRA adapter into the checkpoint's weights (repeatable; SCALE defaults to 1)",
    )
    parser.add_argument("--keep", action="store_true", help="with --quantize: keep the unquantized intermediate GGUF")
    parser.add_argument("--threads", type=int, help="with --quantize: quantizer threads (default: all cores)")
    add_json_option(parser)
    parser.set_defaults(handler=run)


def _print_plan(
    plan: ConversionPlan, output: Path, as_json: bool, quantized: tuple[str, Path, bool] | None = None
) -> None:
    """The plan as a table (or JSON); `quantized`: the type and file a quantization would make of
    `output`, and whether `output` is kept (--keep)."""
    rows = [(t.name, "x".join(str(d) for d in reversed(t.shape)), t.qtype.name, t.source) for t in plan.tensors]
    if as_json:
        then = {"quantize": {"type": quantized[0], "output": str(quantized[1])}} if quantized else {}
        print(
            json.dumps(
                {
                    **then,
                    "output": str(output),
                    "outtype": plan.bulk_type.name,
                    "parameters": plan.n_params,
                    "estimated_size": plan.estimated_size,
                    "tokenizer": plan.vocabulary.model,
                    "pre_tokenizer": plan.vocabulary.pre,
                    "tensors": [dict(zip(("name", "shape", "type", "source"), r, strict=False)) for r in rows],
                },
                indent=2,
            )
        )
        return
    print(format_table(("TENSOR", "SHAPE", "TYPE", "SOURCE"), rows))
    _print_notes(plan)
    config = plan.checkpoint.config
    print(
        f"\n{config.architecture_name}: {plan.n_params:,} parameters, {config.n_layer} layers, "
        f"tokenizer {plan.vocabulary.model}/{plan.vocabulary.pre} ({len(plan.vocabulary.tokens)} tokens)"
    )
    print(f"would write {output} ({plan.bulk_type.name}, about {format_bytes(plan.estimated_size)})")
    if quantized:
        kept = "kept" if quantized[2] else "then removed"
        print(f"then quantize it to {quantized[0]}: {quantized[1]} (the {plan.bulk_type.name} file {kept})")


def _dry_run_with_quantize(args: argparse.Namespace) -> int:
    """--dry-run --quantize: the conversion's plan, and what quantizing would then write."""
    from llamadesk.app.library.checkpoint_conversion import plan_steps

    steps = plan_steps(
        args.source,
        args.output,
        args.quantize,
        pre_tokenizer=args.pre_tokenizer,
        tensor_overlay=_overlay(args),
        merged=_merged_names(args),
    )
    if steps.unquantized is None:  # written by the converter directly, as the real run does
        _print_plan(steps.plan, steps.target, args.json)
    else:
        _print_plan(steps.plan, steps.unquantized, args.json, (steps.quant_type.name, steps.target, args.keep))
    return 0


def _write_with_progress(plan: ConversionPlan, output: Path, force: bool, check) -> Path:
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task(f"writing {output.name}", total=plan.tensor_bytes)
        return write_gguf(plan, output, force, lambda done, total: bar.update(task, completed=done), check)


def _verify(plan: ConversionPlan, written: Path, final_name: Path) -> str:
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import LoadSettings

    if sys.stderr.isatty():
        print("verifying against the source checkpoint...", file=sys.stderr)
    with Engine.load(written, LoadSettings(n_ctx=VERIFY_CONTEXT)) as engine:
        return verify_against_source(
            plan, final_name.name, lambda t: engine.tokenize(t, add_bos=True, special=True), engine.position_logits
        )


def _overlay(args: argparse.Namespace):
    """The adapters to merge (--lora), as plan_conversion's tensor overlay; None without any."""
    if not args.lora:
        return None
    from llamadesk.convert.lora import parse_adapter_choice
    from llamadesk.convert.lora.merge import adapter_overlay

    return adapter_overlay([parse_adapter_choice(text) for text in args.lora])


def _check_output_spares_adapters(args: argparse.Namespace) -> None:
    """Refuse an -o naming a --lora adapter's own file (the checkpoint's are checked where it is
    written): --force replaces an old output, never an input."""
    if not (args.lora and args.output):
        return
    from llamadesk.convert.lora import parse_adapter_choice
    from llamadesk.convert.source_files import check_output_is_not_a_source, folder_files

    for text in args.lora:
        adapter = parse_adapter_choice(text).path
        check_output_is_not_a_source(Path(args.output), folder_files(adapter) if adapter.is_dir() else [adapter])


def _merged_names(args: argparse.Namespace) -> list[str]:
    """The --lora adapters' folder names, for the merged model's default file name."""
    from llamadesk.convert.lora import parse_adapter_choice

    return [parse_adapter_choice(text).path.resolve().name for text in args.lora or ()]


def _origin(args: argparse.Namespace, **fields: str) -> dict[str, object]:
    """The library record of a conversion: its checkpoint, and the adapters merged into it."""
    return {"checkpoint": args.source, **fields, **({"merged": args.lora} if args.lora else {})}


def run(args: argparse.Namespace) -> int:
    from llamadesk.app.commands.convert_adapter import is_adapter_folder, run_adapter

    if not args.source.strip():  # Path("") is ".": an empty name converted the current folder
        raise BadInputError("SRC is empty; give a checkpoint folder or a Hub repo id (owner/name)")
    if is_adapter_folder(args.source):
        return run_adapter(args)
    if args.base:
        raise BadInputError("--base applies when SRC is a LoRA adapter folder (with adapter_config.json)")
    _check_output_spares_adapters(args)
    if args.quantize:
        return _dry_run_with_quantize(args) if args.dry_run else _run_with_quantize(args)
    if args.keep or args.threads:
        raise BadInputError("--keep and --threads only apply with --quantize")
    name = args.source if looks_like_repo_id(args.source) else None  # a snapshot folder is named by its hash
    folder = resolve_source(args.source)
    plan = plan_conversion(folder, args.outtype, args.pre_tokenizer, name, _overlay(args))
    from llamadesk.app.library.checkpoint_conversion import conversion_output

    output = args.output or conversion_output(plan, _merged_names(args))
    if args.dry_run:
        _print_plan(plan, output, args.json)
        return 0
    _print_notes(plan)
    verified: list[str] = []
    check = (lambda written: verified.append(_verify(plan, written, output))) if args.verify else None
    path = _write_with_progress(plan, output, args.force, check)
    record_made_model(path, _origin(args, outtype=plan.bulk_type.name))  # `models` lists it, even outside its folder
    _report(args, path, plan.bulk_type.name, plan.n_params, verified)
    return 0


def _print_notes(plan: ConversionPlan) -> None:
    """What the user should know about the files read and how the GGUF differs from the checkpoint (on stderr)."""
    from llamadesk.app.library.checkpoint_conversion import conversion_notes  # as the functions above do

    for note in conversion_notes(plan):
        print(f"note: {note}", file=sys.stderr)


def _report(args: argparse.Namespace, path: Path, qtype: str, n_params: int | None, verified: list[str]) -> None:
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(path),
                    "outtype": qtype,
                    "size": path.stat().st_size,
                    "parameters": n_params,
                    "verified": verified[0] if verified else None,
                }
            )
        )
    else:
        note = f"; verified: {verified[0]}" if verified else ""
        print(f"wrote {path} ({qtype}, {format_bytes(path.stat().st_size)}{note})")


def _run_with_quantize(args: argparse.Namespace) -> int:
    """Checkpoint to a quantized GGUF: convert/ then quantize/, one progress bar each."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from llamadesk.app.library.checkpoint_conversion import check_convert_type, convert_checkpoint

    qtype = check_convert_type(args.quantize)
    verified: list[str] = []
    planned: list[ConversionPlan] = []

    def note_plan(plan: ConversionPlan) -> None:
        planned.append(plan)  # for --json's "parameters"
        _print_notes(plan)

    check = None
    if args.verify:

        def check(plan: ConversionPlan, written: Path) -> None:
            # Against the plan that was written (Q8_0 directly, the adapters merged with --lora).
            # `written` is a temporary name: not shown.
            shown = Path(args.output) if args.output else Path(f"{Path(args.source).name} (converted)")
            verified.append(_verify(plan, written, shown))

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as bar:
        converting = bar.add_task("converting", total=None)
        quantizing = bar.add_task("quantizing", total=None, visible=False)

        def quantize_step(step) -> None:
            bar.update(quantizing, completed=step.index - 1, total=step.total, visible=True)

        path, kept = convert_checkpoint(
            args.source,
            args.output,
            qtype,
            keep=args.keep,
            force=args.force,
            threads=args.threads,
            pre_tokenizer=args.pre_tokenizer,
            convert_progress=lambda done, total: bar.update(converting, completed=done, total=total),
            quantize_progress=quantize_step,
            check=check,
            tensor_overlay=_overlay(args),
            merged=_merged_names(args),
            planned=note_plan,
        )
    origin = _origin(args, outtype=qtype.name)
    if kept is not None:
        record_made_model(kept, _origin(args))
        origin["quantized_from"] = kept.name
    record_made_model(path, origin)
    _report(args, path, qtype.name, planned[0].n_params if planned else None, verified)
    return 0
