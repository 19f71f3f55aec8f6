"""`llamadesk search`: Hub repos that hold GGUF files."""

from __future__ import annotations

import argparse
import json

from llamadesk.app.commands.options import add_json_option
from llamadesk.app.commands.table import format_table

SHOWN_RESULTS = 20  # the default --limit: one screen of results

EXAMPLES = """examples:
  llamadesk search smollm2
  llamadesk search "llama 3.2 1b" --limit 5 --json | jq '.[].repo'
  then: llamadesk pull OWNER/NAME
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "search",
        help="find GGUF models on the Hugging Face Hub",
        description="Search the Hub for repos with GGUF files, most downloaded first.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("query", nargs="+", help="words to search for in repo names")
    parser.add_argument(
        "--limit", type=int, default=SHOWN_RESULTS, help=f"at most this many results (default: {SHOWN_RESULTS})"
    )
    add_json_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from llamadesk.app.hub.errors import quiet_hub_logging  # here: see commands/pull.py
    from llamadesk.app.hub.repo import search_gguf_models

    quiet_hub_logging()
    found = search_gguf_models(" ".join(args.query), limit=args.limit)
    if args.json:
        print(json.dumps([m.to_json() for m in found], indent=2))
        return 0
    if not found:
        print("no GGUF repos match; try fewer or other words")
        return 0
    rows = [(m.repo, m.downloads, m.likes, (m.updated or "")[:10], "yes" if m.gated else "") for m in found]
    print(format_table(("REPO", "DOWNLOADS", "LIKES", "UPDATED", "GATED"), rows))
    return 0
