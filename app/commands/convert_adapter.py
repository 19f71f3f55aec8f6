"""`llamadesk convert ADAPTER_DIR`: a PEFT LoRA adapter folder to a GGUF adapter (part of `convert`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from llamadesk.app.commands.table import format_table
from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import BadInputError
from llamadesk.app.core.paths import models_dir
from llamadesk.app.library.registry import record_made_model
from llamadesk.convert.lora import AdapterPlan, plan_adapter, write_adapter
from llamadesk.convert.lora.adapter_config import CONFIG_NAME


def is_adapter_folder(source: str) -> bool:
    try:
        return (Path(source).expanduser() / CONFIG_NAME).is_file()
    except (OSError, RuntimeError):
        return False


def _print_plan(plan: AdapterPlan, output: Path, as_json: bool) -> None:
    rows = [(t.name, "x".join(str(d) for d in reversed(t.shape)), t.qtype.name, t.source) for t in plan.tensors]
    if as_json:
        print(
            json.dumps(
                {
                    "output": str(output),
                    "outtype": plan.bulk_type.name,
                    "base": plan.base.name,
                    "alpha": plan.alpha,
                    "parameters": plan.n_params,
                    "tensors": [dict(zip(("name", "shape", "type", "source"), r, strict=False)) for r in rows],
                },
                indent=2,
            )
        )
        return
    print(format_table(("TENSOR", "SHAPE", "TYPE", "SOURCE"), rows))
    print(
        f"\nLoRA adapter for {plan.base.name} ({plan.base.config.architecture_name}): {len(plan.targets)} weights, "
        f"alpha {plan.alpha:g}, {plan.n_params:,} parameters"
    )
    print(f"would write {output} ({plan.bulk_type.name}, about {format_bytes(plan.tensor_bytes + 4096)})")


def _verify(plan: AdapterPlan, written: Path) -> str:
    from llamadesk.app.engine.llama_engine import Engine
    from llamadesk.app.engine.types import LoadSettings
    from llamadesk.convert.lora.verify_adapter import verify_adapter

    def run_with_adapter(base: Path, adapter: Path, check) -> str:
        if sys.stderr.isatty():
            print("verifying against a numpy forward pass with the adapter applied...", file=sys.stderr)
        with Engine.load(base, LoadSettings(n_ctx=128, lora=((str(adapter), 1.0),))) as engine:
            return check(lambda t: engine.tokenize(t, add_bos=True), engine.position_logits)

    return verify_adapter(plan, written, run_with_adapter)


def run_adapter(args: argparse.Namespace) -> int:
    for flag, given in (("--quantize", args.quantize), ("--lora", args.lora)):
        if given:
            raise BadInputError(f"{flag} does not apply to a LoRA adapter; it applies to a checkpoint")
    plan = plan_adapter(Path(args.source).expanduser(), args.base, args.outtype)
    output = args.output or models_dir() / plan.default_file_name
    if args.dry_run:
        _print_plan(plan, output, args.json)
        return 0
    from rich.progress import BarColumn, DownloadColumn, Progress

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task(f"writing {output.name}", total=plan.tensor_bytes)
        verified: list[str] = []
        check = (lambda written: verified.append(_verify(plan, written))) if args.verify else None
        path = write_adapter(plan, output, args.force, lambda done, total: bar.update(task, completed=done), check)
    record_made_model(path, {"adapter": args.source, "base": plan.base.name, "outtype": plan.bulk_type.name})
    note = verified[0] if verified else None
    size = path.stat().st_size
    if args.json:
        summary = {"path": str(path), "outtype": plan.bulk_type.name, "base": plan.base.name, "size": size}
        print(json.dumps({**summary, "verified": note}))
    else:
        verified_note = f"; verified: {note}" if note else ""
        kind = f"LoRA adapter for {plan.base.name}, {plan.bulk_type.name}"
        print(f"wrote {path} ({kind}, {format_bytes(size)}{verified_note})")
    return 0
