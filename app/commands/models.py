"""`llamadesk models`: what llamadesk can run on this machine."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..library import list_models
from ..machine import format_bytes
from .options import add_json_option
from .table import format_table

EXAMPLES = """examples:
  llamadesk models
  llamadesk models --json | jq '.[].name'
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "models", help="list the models in the library",
        description="List starter models and every GGUF in the library.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_json_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ...quantize.evaluation import saved_evaluations, summary_line

    entries = list_models()
    evaluations = {e.name: saved_evaluations(Path(e.path)) for e in entries}
    if args.json:
        print(json.dumps([{**e.to_json(), "evaluations": evaluations[e.name]} for e in entries], indent=2))
        return 0
    rows = [
        (e.name, e.architecture, e.size_label, e.quantization, format_bytes(e.file_size),
         e.context_length, "yes" if e.has_chat_template else "no", e.source,
         summary_line(evaluations[e.name][-1]) if evaluations[e.name] else "")
        for e in entries
    ]
    print(format_table(("NAME", "ARCH", "PARAMS", "QUANT", "SIZE", "CONTEXT", "CHAT", "SOURCE", "EVAL"), rows))
    return 0
