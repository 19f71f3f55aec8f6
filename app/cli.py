"""The `llamadesk` command: one short module per subcommand under commands/.

Exit codes are stable for scripts: 0 ok, 1 failure, 2 bad input, 130 interrupted. Whatever the
user got wrong is printed as one line on stderr, never as a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence

from llamadesk.app.core.errors import LlamadeskError

# Every subcommand and the module under commands/ that defines it, in the order --help lists them.
COMMAND_MODULES = {
    "chat": "chat",
    "translate": "translate",
    "serve": "serve",
    "models": "models",
    "pull": "pull",
    "search": "search",
    "convert": "convert",
    "quantize": "quantize",
    "imatrix": "imatrix",
    "fit": "fit",
    "eval": "eval",
    "info": "info",
    "bench": "bench",
    "doctor": "doctor",
    "rpc-server": "rpc_server",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for `command` alone when it names a subcommand, else for all of them.

    Why not always all: each subcommand's module imports what it needs (numpy, gguf,
    huggingface_hub, ...), ~0.5 s in all, which a script running `llamadesk quantize` in a loop
    would pay every time for commands it never runs.
    """
    parser = argparse.ArgumentParser(
        prog="llamadesk",
        description="Offline local LLMs: chat, translate, convert and quantize on your own machine.",
        epilog="Run `llamadesk COMMAND --help` for examples. With no command, opens the app.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = [command] if command in COMMAND_MODULES else list(COMMAND_MODULES)
    for name in names:
        importlib.import_module(f"{__package__}.commands.{COMMAND_MODULES[name]}").register(sub)
    return parser


def _os_error_line(err: OSError) -> str:
    if err.errno == errno.ENOSPC:
        return f"the disk is full ({err.filename or 'while writing'}); free some space and try again"
    where = f": {err.filename}" if err.filename else ""
    return f"{err.strerror or err}{where}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if not argv:
            from llamadesk.app.tui.app import run_app  # Textual loads only when the app opens

            return run_app()
        parser = build_parser(argv[0])
        args = parser.parse_args(argv)
        if args.command is None:  # only `--`: nothing to run
            parser.print_help(sys.stderr)
            return 2
        return int(args.handler(args) or 0)
    except LlamadeskError as err:
        print(f"llamadesk: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("\nllamadesk: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0  # `llamadesk ... | head` closed our stdout: not an error
    except OSError as err:
        print(f"llamadesk: {_os_error_line(err)}", file=sys.stderr)
        return 1
    except MemoryError:
        print("llamadesk: ran out of memory; close other programs or use a smaller model", file=sys.stderr)
        return 1
    except Exception as err:
        # Every reader checks its input first; this is the net under what none of them foresaw, so
        # a user still gets one line and exit 1, not a traceback. LLAMADESK_DEBUG=1 shows it.
        if os.environ.get("LLAMADESK_DEBUG"):
            raise
        print(
            f"llamadesk: internal error ({type(err).__name__}: {str(err)[:200]}); "
            "set LLAMADESK_DEBUG=1 to see where, and please report it",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
