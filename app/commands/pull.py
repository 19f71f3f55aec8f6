"""`llamadesk pull`: download a GGUF from the Hugging Face Hub into the library."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from llamadesk.app.commands.options import add_json_option
from llamadesk.app.commands.table import format_table
from llamadesk.app.core.byte_sizes import format_bytes
from llamadesk.app.core.machine import machine_facts
from llamadesk.app.core.printable import printable
from llamadesk.app.library.catalog import inspect_model
from llamadesk.app.library.fit import memory_fit

EXAMPLES = """examples:
  llamadesk pull bartowski/SmolLM2-135M-Instruct-GGUF              (the best file that fits this machine)
  llamadesk pull bartowski/SmolLM2-135M-Instruct-GGUF:Q8_0
  llamadesk pull bartowski/SmolLM2-135M-Instruct-GGUF:SmolLM2-135M-Instruct-Q4_K_M.gguf
  llamadesk pull bartowski/SmolLM2-135M-Instruct-GGUF --list
  llamadesk pull HuggingFaceTB/SmolLM2-135M-Instruct --convert Q4_K_M (a checkpoint, converted)
Gated repos need a token: `hf auth login`, or HF_TOKEN. With HF_HUB_OFFLINE=1 only the cache is used.
An interrupted download resumes when you run the same pull again.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "pull",
        help="download a GGUF model from the Hugging Face Hub",
        description="Download REPO's GGUF (QUANT or FILE if given, else the best that fits this machine), "
        "check its sha256, and add it to the library. Files stay in the Hugging Face cache.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "spec", metavar="REPO[:QUANT|:FILE]", help="a Hub repo id, optionally with a quantization or file name"
    )
    parser.add_argument("--revision", help="branch, tag or commit (default: main)")
    parser.add_argument("--list", action="store_true", help="list the repo's GGUF files and download nothing")
    parser.add_argument(
        "--convert", metavar="TYPE", help="for a checkpoint repo: download it and convert to TYPE (e.g. Q4_K_M)"
    )
    parser.add_argument("--force", action="store_true", help="with --convert: replace an earlier conversion")
    add_json_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: huggingface-hub reads HF_ENDPOINT at import, and a bad one must not break
    # `llamadesk --help` (app/hub/__init__.py says it in one line when pull runs).
    from llamadesk.app.hub.errors import quiet_hub_logging
    from llamadesk.app.hub.pull import list_variants, pull_and_convert, pull_model

    quiet_hub_logging()
    if args.list:
        variants = list_variants(args.spec, args.revision)
        if args.json:
            print(
                json.dumps(
                    [
                        {"quantization": v.quantization, "files": [f.path for f in v.files], "size": v.size}
                        for v in variants
                    ],
                    indent=2,
                )
            )
        else:
            rows = [
                (v.label, format_bytes(v.size) if v.size is not None else "?", len(v.files), printable(v.first.path))
                for v in variants
            ]
            print(format_table(("QUANT", "SIZE", "PARTS", "FILE"), rows))
        return 0
    if args.convert:
        output = pull_and_convert(args.spec, args.convert, args.revision, force=args.force)
        print(json.dumps({"path": str(output)}) if args.json else f"converted to {output}")
        return 0
    result = pull_model(args.spec, args.revision)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    state = "downloaded" if result.downloaded else "already downloaded"
    print(
        f"{state} {result.repo} ({result.quantization or 'GGUF'}, {len(result.paths)} file(s)) "
        f"as {printable(result.name)}",
        file=sys.stderr,
    )
    _warn_if_too_big(result.paths[0])
    # Quoted: a name from a file on the Hub may hold spaces or `&`, and pasted as it is it would run
    # something else.
    print(f"chat with it: llamadesk chat -m {printable(shlex.quote(result.name))}")
    return 0


def _warn_if_too_big(path: Path) -> None:
    """A file asked for by name may not fit; say so now rather than when chat starts swapping."""
    fit = memory_fit(inspect_model(path), machine_facts())
    if not fit.fits:
        print(
            f"note: it needs about {format_bytes(fit.needed)} of memory with a {fit.context}-token context "
            f"(+{format_bytes(fit.reserve)} kept free for the system) and {format_bytes(fit.available)} "
            "is free; it may run slowly or not load",
            file=sys.stderr,
        )
