"""`llamadesk rpc-server`: lend this machine to another llamadesk through llama.cpp's RPC backend."""

from __future__ import annotations

import argparse
import signal
import sys

# llama.cpp's rpc-server listens here unless told otherwise; clients name the port in --rpc.
DEFAULT_PORT = 50052

EXAMPLES = """examples:
  llamadesk rpc-server                          (127.0.0.1:50052, for a second process on this machine)
  llamadesk rpc-server --host 0.0.0.0 --port 50052    (on a helper machine in a trusted network)
  llamadesk chat -m big-model.gguf --rpc 192.168.1.20:50052,192.168.1.21:50052   (on the main machine)

The RPC protocol has no authentication or encryption: anyone who reaches the port can use the
machine's memory and compute. Bind to a private network only. Needs llama-cpp-python built with
CMAKE_ARGS="-DGGML_RPC=on" on every machine, all of the same version.
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "rpc-server",
        help="serve this machine's CPU/GPU to other llamadesk processes (llama.cpp RPC)",
        description="Run a llama.cpp RPC server on this machine's GPU (or CPU) until Ctrl-C.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default: {DEFAULT_PORT})")
    parser.add_argument("--threads", type=int, help="CPU threads (default: one per physical core)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from llamadesk.app.core.errors import BadInputError
    from llamadesk.app.core.machine import machine_facts
    from llamadesk.app.engine.fitted_settings import choose_threads
    from llamadesk.app.engine.rpc import is_loopback, serve

    if not 0 < args.port < 65536:
        raise BadInputError(f"--port must be 1-65535, not {args.port}")
    threads, _ = choose_threads(machine_facts(), args.threads)
    if not is_loopback(args.host):
        print(
            f"llamadesk: warning: serving on {args.host}:{args.port} without authentication; "
            "use a trusted network only",
            file=sys.stderr,
        )
    # serve() blocks in llama.cpp until the process ends, where a Python signal handler never
    # runs: SIGTERM and SIGHUP end it at once, as by default (a server has nothing to clean up).
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)
    serve(args.host, args.port, threads)
    return 0
