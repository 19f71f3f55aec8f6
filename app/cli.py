"""The `llamadesk` command: one short module per subcommand under commands/.

Exit codes are stable for scripts: 0 ok, 1 failure, 2 bad input, 130 interrupted (Ctrl-C), 143
and 129 stopped by SIGTERM and SIGHUP. Whatever the user got wrong is printed as one line on
stderr, never as a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from llamadesk.app.core.errors import LlamadeskError
from llamadesk.app.core.printable import printable

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


class OneLineParser(argparse.ArgumentParser):
    """argparse, except that a usage error is one line on stderr, as every other bad input is.

    argparse prints its whole usage block and then the error (2 to 30 lines); the usage is one
    `--help` away, and the line says so.
    """

    # The subcommand being parsed, for errors the top parser reports ("unrecognized arguments").
    command: str | None = None

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("llamadesk").strip() or self.command
        helping = f"llamadesk {command} --help" if command else "llamadesk --help"
        self.exit(2, f"llamadesk: {message}; see `{helping}`\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for `command` alone when it names a subcommand, else for all of them.

    Why not always all: each subcommand's module imports what it needs (numpy, gguf,
    huggingface_hub, ...), ~0.5 s in all, which a script running `llamadesk quantize` in a loop
    would pay every time for commands it never runs.
    """
    parser = OneLineParser(
        prog="llamadesk",
        description="Offline local LLMs: chat, translate, convert and quantize on your own machine.",
        epilog="Run `llamadesk COMMAND --help` for examples. With no command, opens the app.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = [command] if command in COMMAND_MODULES else list(COMMAND_MODULES)
    for name in names:
        importlib.import_module(f"{__package__}.commands.{COMMAND_MODULES[name]}").register(sub)
    # Flags are taken only as spelled: argparse's prefixes took llama-cli's `--prompt TEXT` for
    # `--prompt-lookup`, and a flag added later would change what an old command line means.
    parser.allow_abbrev = False
    parser.command = command if command in COMMAND_MODULES else None
    for command_parser in sub.choices.values():
        command_parser.allow_abbrev = False
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, so that it stops as it does for Ctrl-C.

    Python's default for both is to die at once, which left a half-written `.part` file behind
    whenever `timeout`, a service manager or a closed terminal stopped a conversion, a quantization
    or a download. As a KeyboardInterrupt, every cleanup made for Ctrl-C runs for them too.
    """

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(signum)


class _CtrlC:
    """Python's own Ctrl-C handler that also remembers that Ctrl-C came.

    numpy's compiled part turns a KeyboardInterrupt raised while it is being imported into an
    ImportError ("PyCapsule_Import could not import module datetime") with nothing of the interrupt
    left in it; without this record a Ctrl-C in a command's first tenth of a second was reported
    as an internal error, several lines of numpy's advice included.
    """

    seen = False

    @classmethod
    def handle(cls, signum: int, frame: object) -> None:
        cls.seen = True
        signal.default_int_handler(signum, frame)


def _stop_cleanly_on_termination() -> dict[int, object]:
    """Turn SIGTERM and SIGHUP into Terminated where they have their default, and let Ctrl-C be
    remembered (_CtrlC); the handlers replaced."""
    replaced: dict[int, object] = {}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        try:
            replaced[signal.SIGINT] = signal.signal(signal.SIGINT, _CtrlC.handle)
        except ValueError:  # not the main thread
            return replaced
    for name in ("SIGTERM", "SIGHUP"):  # SIGHUP does not exist on Windows
        signum = getattr(signal, name, None)
        # An ignored signal stays ignored (nohup sets SIGHUP so); main() may run in a thread in tests.
        if signum is None or signal.getsignal(signum) != signal.SIG_DFL:
            continue
        try:
            replaced[signum] = signal.signal(signum, _raise_terminated)
        except ValueError:  # not the main thread
            break
    return replaced


def _os_error_line(err: OSError) -> str:
    if err.errno == errno.ENOSPC:
        return f"the disk is full ({err.filename or 'while writing'}); free some space and try again"
    if err.errno == errno.EFBIG:  # a write to stdout, say, past `ulimit -f`: "File too large" alone
        return (
            f"a file grew past the largest this process may write (`ulimit -f`) or its file system holds "
            f"({err.filename or 'while writing'}); raise the limit or write to another disk"
        )
    where = f": {err.filename}" if err.filename else ""
    return f"{err.strerror or err}{where}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Commands only: the app (Textual) keeps its own handling of the terminal's signals.
    replaced = _stop_cleanly_on_termination() if argv else {}
    try:
        return _run(argv)
    finally:
        for signum, handler in replaced.items():
            signal.signal(signum, handler)


def _run(argv: list[str]) -> int:
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
        # Messages quote names from strangers' files (another app's model names, GGUF metadata):
        # their control characters are shown, never sent to the terminal as escape sequences.
        print(f"llamadesk: {printable(str(err))}", file=sys.stderr)
        return err.exit_code
    except Terminated as stop:
        print(f"\nllamadesk: stopped by {signal.Signals(stop.signum).name}", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print("\nllamadesk: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0  # `llamadesk ... | head` closed our stdout: not an error
    except OSError as err:
        print(f"llamadesk: {printable(_os_error_line(err))}", file=sys.stderr)
        return 1
    except MemoryError:
        print("llamadesk: ran out of memory; close other programs or use a smaller model", file=sys.stderr)
        return 1
    except Exception as err:
        if isinstance(err, ImportError) and _CtrlC.seen:  # numpy's disguise of Ctrl-C (_CtrlC)
            print("\nllamadesk: interrupted", file=sys.stderr)
            return 130
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
