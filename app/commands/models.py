"""`llamadesk models`: what llamadesk can run on this machine; `models rm`, `models add`, `models discover`."""

from __future__ import annotations

import argparse
import json
import sys

from llamadesk.app.commands.options import add_json_option
from llamadesk.app.commands.table import format_table
from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.errors import BadInputError, LlamadeskError
from llamadesk.app.core.printable import printable
from llamadesk.app.library.catalog import (
    LibraryEntry,
    add_folder,
    describe_origin,
    plan_removal,
    read_library,
    set_discovery,
)
from llamadesk.quantize.evaluation import summary_line

EXAMPLES = """examples:
  llamadesk models
  llamadesk models --json | jq '.[] | select(.fits) | .name'
  llamadesk models add ~/Downloads/gguf        (list the GGUFs in a folder too)
  llamadesk models add ~/.ollama/models        (Ollama's models, by their Ollama names)
  llamadesk models discover off                (stop listing Ollama's and LM Studio's models by themselves)
  llamadesk models rm SmolLM2-135M-Instruct-Q4_K_M --yes
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "models",
        help="list, add or remove models in the library",
        description="List starter models, pulled models, models llamadesk made and models in folders you added.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_json_option(parser)
    parser.set_defaults(handler=run_list)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    rm = actions.add_parser(
        "rm",
        help="remove a model (deletes only files llamadesk created or downloaded)",
        description="Remove a model from the library. Files llamadesk downloaded or made are deleted; "
        "files it found elsewhere are only forgotten. Give an added folder to stop listing it.",
        epilog="examples:\n  llamadesk models rm my-model\n  llamadesk models rm ~/Downloads/gguf --yes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rm.add_argument("name", metavar="NAME", help="a model name from `llamadesk models`, or a folder you added")
    rm.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    rm.set_defaults(handler=run_rm)
    add = actions.add_parser(
        "add",
        help="list the GGUF files in a folder, or another app's models, too (nothing is copied)",
        description="Add a folder to the library: every .gguf in it (and below) shows up in `llamadesk models`. "
        "Ollama's store (a folder with manifests/ and blobs/) and LM Studio's models folder are read the way "
        "those apps write them, and their models keep the names those apps give them.",
        epilog="examples:\n  llamadesk models add ~/models\n  llamadesk models add /usr/share/ollama/.ollama/models\n"
        "  llamadesk models add ~/.lmstudio/models",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("folder", metavar="DIR", help="a folder holding .gguf files, or Ollama's or LM Studio's models")
    add.set_defaults(handler=run_add)
    discover = actions.add_parser(
        "discover",
        help="list Ollama's and LM Studio's models found where those apps keep them (on by default)",
        description="Whether the library lists, by itself, the models Ollama ($OLLAMA_MODELS, ~/.ollama/models, "
        "/usr/share/ollama/.ollama/models) and LM Studio (~/.lmstudio/models) downloaded. Nothing is copied; "
        "stores added with `models add` are listed either way.",
        epilog="examples:\n  llamadesk models discover off\n  llamadesk models discover on",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    discover.add_argument("state", choices=("on", "off"), help="on (the default) or off")
    discover.set_defaults(handler=run_discover)


def _row(e: LibraryEntry) -> tuple:
    return (
        e.name,
        e.architecture,
        e.size_label,
        e.quantization,
        format_bytes(e.file_size),
        e.context_length,
        "yes" if e.has_chat_template else "no",
        "yes" if e.fits else "no",
        describe_origin(e),
        summary_line(e.eval_results[-1]) if e.eval_results else "",
    )


def run_list(args: argparse.Namespace) -> int:
    entries, skipped = read_library(adapters=True)
    for model in skipped:  # a note each, on stderr: the list itself stays parseable
        print(f"llamadesk: skipped {printable(model.name)}: {printable(model.reason)}", file=sys.stderr)
    _note_unfinished_downloads()
    if args.json:
        print(json.dumps([e.to_json() for e in entries], indent=2, ensure_ascii=False))
        return 0
    headers = ("NAME", "ARCH", "PARAMS", "QUANT", "SIZE", "CONTEXT", "CHAT", "FITS", "SOURCE", "EVAL")
    print(format_table(headers, [_row(e) for e in entries if e.kind == "model"]))
    adapters = [e for e in entries if e.kind == "adapter"]
    if adapters:
        rows = [
            (e.name, e.base or "-", e.architecture, format_bytes(e.file_size), describe_origin(e)) for e in adapters
        ]
        print("\nLoRA adapters (use with chat/translate --lora FILE):")
        print(format_table(("ADAPTER", "BASE", "ARCH", "SIZE", "SOURCE"), rows))
    return 0


def _note_unfinished_downloads() -> None:
    """Say on stderr how much space stopped pulls hold, and how to finish or drop them."""
    try:
        from llamadesk.app.hub.unfinished import unfinished_downloads  # checks the Hub's settings first

        found = unfinished_downloads()
    except LlamadeskError:  # a bad HF_ENDPOINT: said where a pulled model is listed or pulled
        return
    if found is not None:
        repos = ", ".join(printable(r) for r in found.repos[:5]) + (" ..." if len(found.repos) > 5 else "")
        print(
            f"note: {format_bytes(found.size)} of unfinished downloads in {found.folder} ({repos}); "
            f"run the same `llamadesk pull` to finish them, or delete the *.llamadesk-partial files "
            "there to free the space",
            file=sys.stderr,
        )


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise BadInputError("not asking on a non-interactive input; pass --yes to remove without asking")
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def run_rm(args: argparse.Namespace) -> int:
    removal = plan_removal(args.name)
    if not args.yes and not _confirm(f"This will {printable(removal.summary)}. Continue?"):
        print("nothing removed", file=sys.stderr)
        return 1
    removed = removal.apply()
    print(
        f"removed {printable(removal.name)}"
        + (f" ({len(removed)} file(s) deleted)" if removed else " (no files deleted)")
    )
    return 0


def run_add(args: argparse.Namespace) -> int:
    from llamadesk.app.library.other_apps import APP_NAMES

    folder, count, new, app = add_folder(args.folder)
    state = "added" if new else "already in the library:"
    what = f"{APP_NAMES[app]}'s store" if app else "folder"
    print(f"{state} {what} {folder} ({count} GGUF model(s) in it)")
    if count == 0:
        print(f"note: {folder} holds no GGUF model yet; `llamadesk models` lists what is added", file=sys.stderr)
    return 0


def run_discover(args: argparse.Namespace) -> int:
    from llamadesk.app.library.other_apps import APP_NAMES

    found = set_discovery(args.state == "on")
    if args.state == "off":
        print("llamadesk lists other apps' models only from stores you add (`llamadesk models add DIR`)")
        return 0
    where = ", ".join(f"{APP_NAMES[s.app]} ({s.path})" for s in found) or "none on this machine now"
    print(f"llamadesk lists the models of other apps it finds by itself: {where}")
    return 0
