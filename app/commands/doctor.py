"""`llamadesk doctor`: the build, the machine, the settings llamadesk will use, and what to fix."""

from __future__ import annotations

import argparse
import json

from llamadesk.app.commands.options import add_json_option, add_load_options, add_model_option, load_settings

EXAMPLES = """examples:
  llamadesk doctor
  llamadesk doctor -m ./mistral-7b.Q4_K_M.gguf        (settings for that model)
  llamadesk doctor --json | jq .warnings
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "doctor",
        help="check the llama.cpp build and this machine, and show the settings in use",
        description=(
            "Show Python and llama-cpp-python versions, the compiled backend, GPUs, CPU, cores, SIMD, "
            "memory and disk, the settings llamadesk loads a model with (and why), and warnings with "
            "the exact command that fixes each (for instance, a GPU the build cannot use)."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_option(parser)
    add_load_options(parser)
    add_json_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from llamadesk.app.core.gguf_file import inspect_gguf
    from llamadesk.app.library.catalog import resolve_model
    from llamadesk.app.settings.doctor_report import build_report, format_report, gather_facts

    summary = inspect_gguf(resolve_model(args.model))
    report = build_report(gather_facts(summary, load_settings(args)))
    print(json.dumps(report.data, indent=2) if args.json else format_report(report))
    return 0
