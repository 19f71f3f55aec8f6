"""`llamadesk serve`: the library over HTTP for other programs (OpenAI and Ollama APIs)."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from llamadesk.app.commands.options import add_load_options, add_lora_option, load_settings
from llamadesk.app.core.errors import BadInputError

if TYPE_CHECKING:
    from llamadesk.app.core.gguf_file import GGUFHeader

EXAMPLES = """examples:
  llamadesk serve                                   # smollm2 and the library on http://127.0.0.1:11435
  llamadesk serve -m smollm2 -m gemma3-270m --preload
  llamadesk serve --memory-budget 3G                # keep models loaded while together they fit 3 GiB
  llamadesk serve --parallel 4                      # up to 4 replies decoded together, for several clients
  llamadesk serve -m smollm2 --lora my-lora.gguf:0.8   # a fine-tune: the adapter on the -m model
  LLAMADESK_API_KEY=$(openssl rand -hex 24) llamadesk serve --host 0.0.0.0   # on the LAN, with a key

  curl http://127.0.0.1:11435/v1/chat/completions -H 'Content-Type: application/json' \\
       -d '{"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}]}'
  OpenAI clients: base_url http://127.0.0.1:11435/v1; Ollama clients: host http://127.0.0.1:11435
"""


def register(sub: argparse._SubParsersAction) -> None:
    from llamadesk.app.server.server_config import (
        DEFAULT_HOST,
        DEFAULT_MAX_BODY_BYTES,
        DEFAULT_MAX_TOKENS,
        DEFAULT_PORT,
        DEFAULT_QUEUE_SIZE,
    )

    parser = sub.add_parser(
        "serve",
        help="serve models over HTTP (OpenAI- and Ollama-compatible APIs)",
        description=(
            "Serve the library's models to other programs over HTTP: OpenAI's /v1 API and Ollama's /api. "
            "Requests name a model of the library (or one given with -m); it loads on first use, one at a time."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-m",
        "--model",
        dest="models",
        action="append",
        default=[],
        metavar="MODEL",
        help="a model to serve besides the library (a name or a .gguf path; repeat for more); "
        "the first is the one --preload loads",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    parser.add_argument(
        "--api-key",
        help="require 'Authorization: Bearer KEY' (default: $LLAMADESK_API_KEY; prefer it, a flag shows in `ps`)",
    )
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="allow a non-loopback --host without a key (anyone who reaches the port can use it)",
    )
    parser.add_argument(
        "--cors", action="append", default=[], metavar="ORIGIN", help="allow browser pages from ORIGIN (repeatable)"
    )
    parser.add_argument("--preload", action="store_true", help="load the first -m model before accepting requests")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=DEFAULT_MAX_TOKENS,
        help=f"the most tokens one reply may generate (default: {DEFAULT_MAX_TOKENS})",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"the largest request body accepted (default: {DEFAULT_MAX_BODY_BYTES})",
    )
    parser.add_argument(
        "--max-models",
        type=int,
        default=None,
        help="models kept in memory at once; the least recently used is closed for another "
        "(default: 1, or as many as --memory-budget holds)",
    )
    parser.add_argument(
        "--memory-budget",
        metavar="SIZE",
        help="keep models in memory while together they fit SIZE (3G, 800M; 'auto': what is free now less the "
        "reserve); the least recently used is closed to make room, a model larger than SIZE is refused",
    )
    parser.add_argument(
        "--queue-size",
        type=int,
        default=DEFAULT_QUEUE_SIZE,
        help=f"requests that may wait for the model; more get 503 (default: {DEFAULT_QUEUE_SIZE})",
    )
    parser.add_argument(
        "--parallel",
        type=int,
        default=1,
        metavar="N",
        help="replies decoded together, for several clients at once: more tokens/s in all, each reply a "
        "little slower, and a reply's exact words may depend on what else is decoded beside it "
        "(default: 1, one reply at a time)",
    )
    parser.add_argument(
        "--prompt-lookup",
        action="store_true",
        help="greedy requests (temperature 0) that quote their input: guess the quoted tokens and check several "
        "per step, the same reply, faster where it copies long runs (one reply at a time: not with --parallel)",
    )
    add_load_options(parser)
    add_lora_option(parser)
    parser.set_defaults(handler=run)


def _served_models(specs: list[str]) -> dict[str, Path]:
    """The operator's -m models by the name requests use: a library name as given, a file by its stem."""
    from llamadesk.app.library.catalog import looks_like_path, resolve_model

    served: dict[str, Path] = {}
    given: dict[str, str] = {}  # name -> the -m that claimed it, for the message below
    for spec in specs:
        path = resolve_model(spec)  # the operator may name files; requests never can
        name = Path(spec).name.removesuffix(".gguf") if looks_like_path(spec) else spec
        if name in served and served[name].resolve() != path.resolve():
            # Keeping either would silently hide the other (and --preload loaded the second).
            raise BadInputError(f"-m {given[name]} and -m {spec} would both be served as '{name}'; rename one file")
        served.setdefault(name, path)
        given.setdefault(name, spec)
    return served


Adapters = tuple[tuple[str, float], ...]  # (file, scale), as LoadSettings.lora


def _checked_models(served: dict[str, Path]) -> dict[Path, GGUFHeader]:
    """Each -m model's header, checked as a load checks it before the server listens: a file
    that is not a model (an adapter, not GGUF) was served and answered every request with 400."""
    from llamadesk.app.core.gguf_adapter import is_adapter
    from llamadesk.app.core.gguf_file import check_model, open_header, summarize

    headers = {}
    for path in served.values():
        header = open_header(path)
        if is_adapter(header):
            raise BadInputError(f"{path} is a LoRA adapter, not a model; serve its base with -m and add --lora {path}")
        check_model(path, header, summarize(path, header).architecture)
        headers[path] = header
    return headers


def _checked_adapters(headers: dict[Path, GGUFHeader], adapters: Adapters) -> Adapters:
    """--lora: the adapters for the -m models, each checked against every one of them before the
    server listens, so a wrong base is one line and exit 2 rather than an error on the first request."""
    if not adapters:
        return ()
    if not headers:
        raise BadInputError(
            "--lora applies to the models given with -m; add -m with the model the adapter was trained on"
        )
    from llamadesk.app.core.gguf_adapter import check_adapter_fits

    for path, header in headers.items():
        for adapter, _ in adapters:
            check_adapter_fits(Path(adapter), path, header)
    return adapters


def _memory_budget(text: str | None) -> int | None:
    if text is None:
        return None
    if text == "auto":
        from llamadesk.app.core.machine import machine_facts
        from llamadesk.app.core.memory_budget import ram_budget

        return max(1, ram_budget(machine_facts()))
    from llamadesk.app.server.memory_plan import parse_memory_size

    try:
        return parse_memory_size(text)
    except ValueError as err:
        raise BadInputError(f"--memory-budget: {err}") from None


def _bound_sockets(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to every address `host` names (as uvicorn would bind them), before a model is
    loaded: a port in use or a host that is not here is one line and exit 2, where uvicorn found it
    only after --preload and the "serving on" line, printed its own ERROR line and exited 3."""
    try:
        found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        message = f"--host {host}: no such address ({err.strerror}); give an IP address such as 127.0.0.1"
        raise BadInputError(message) from None
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(found):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # as asyncio does: the IPv4 address gets its own socket
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as err:
        for sock in bound:
            sock.close()
        raise BadInputError(_bind_failure(host, port, err)) from None
    return bound


def _bind_failure(host: str, port: int, err: OSError) -> str:
    if err.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use (another server?); stop it or give another --port"
    if err.errno == errno.EACCES:
        return f"port {port} needs administrator rights; give --port 1024 or above"
    if err.errno == errno.EADDRNOTAVAIL:
        return f"--host {host} is not an address of this machine; give one of its addresses, or 127.0.0.1"
    return f"cannot listen on {host} port {port}: {err.strerror or err}"


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"  # IPv6 in brackets


def _say_other_apps_stores() -> None:
    """Name the other apps' stores whose models requests may use, so an operator knows what is exposed."""
    from llamadesk.app.core.errors import LlamadeskError
    from llamadesk.app.library.catalog import other_app_stores
    from llamadesk.app.library.other_apps import APP_NAMES
    from llamadesk.app.library.registry import load_registry

    try:
        stores = other_app_stores(load_registry())
    except LlamadeskError:  # a damaged library record: the listing says so when a request needs it
        return
    if stores:
        where = ", ".join(f"{APP_NAMES[s.app]} ({s.path})" for s in stores)
        print(f"llamadesk: also serving the models of {where}; see `llamadesk models`", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    class _GracefulServer(uvicorn.Server):
        """On SIGTERM or Ctrl-C, replies stop at once (each client gets what was generated and a
        proper end of stream) instead of running to max_tokens while uvicorn waits for them."""

        def __init__(self, pool, config: uvicorn.Config):
            super().__init__(config)
            self._pool = pool

        def handle_exit(self, sig, frame) -> None:
            self._pool.stop_all()
            super().handle_exit(sig, frame)
            # uvicorn raises a caught signal again once it has shut down, so SIGTERM would end the
            # process as killed (-15); a service manager should see a clean stop, exit 0.
            captured = getattr(self, "_captured_signals", None)
            if sig == signal.SIGTERM and captured and captured[-1] == sig:
                captured.pop()

    from llamadesk.app.server.app import build_app
    from llamadesk.app.server.model_pool import ModelPool
    from llamadesk.app.server.server_config import ServerConfig, check_exposure

    if not 0 < args.port < 65536:
        raise BadInputError(f"--port {args.port}: must be between 1 and 65535")
    if not 1 <= args.max_tokens <= 1_000_000:
        raise BadInputError("--max-tokens must be between 1 and 1000000")
    if not 1024 <= args.max_body_bytes <= 1 << 30:
        raise BadInputError("--max-body-bytes must be between 1024 and 1073741824")
    memory_budget = _memory_budget(args.memory_budget)
    max_models = args.max_models if args.max_models is not None else (1 if memory_budget is None else 64)
    if not 1 <= max_models <= 64:
        raise BadInputError("--max-models must be between 1 and 64")
    if not 1 <= args.queue_size <= 10_000:
        raise BadInputError("--queue-size must be between 1 and 10000")
    if not 1 <= args.parallel <= 64:
        raise BadInputError("--parallel must be between 1 and 64")
    if args.prompt_lookup and args.parallel > 1:
        raise BadInputError("--prompt-lookup checks one reply's guesses at a time; leave out --parallel")
    config = ServerConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key or os.environ.get("LLAMADESK_API_KEY") or None,
        insecure_no_auth=args.insecure_no_auth,
        cors_origins=tuple(args.cors),
        max_body_bytes=args.max_body_bytes,
        max_tokens=args.max_tokens,
        queue_size=args.queue_size,
    )
    warning = check_exposure(config)
    if warning:
        print(f"llamadesk: {warning}", file=sys.stderr)
    served = _served_models(args.models)
    settings = load_settings(args)
    adapters = _checked_adapters(_checked_models(served), settings.lora)
    pool = ModelPool(
        served,
        replace(settings, lora=()),
        config.queue_size,
        max_models=max_models,
        memory_budget=memory_budget,
        adapters=adapters,
        parallel=args.parallel,
        prompt_lookup=args.prompt_lookup,
    )
    sockets = _bound_sockets(config.host, config.port)
    if args.preload:  # ready (GET /health answers) only once the model is in memory
        pool.preload(next(iter(served), "smollm2"))
    app = build_app(config, pool)
    server = _GracefulServer(
        pool,
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level="warning",
            access_log=False,  # request_log writes one line per request, at its end
            timeout_graceful_shutdown=10,
        ),
    )
    names = ", ".join(served) or "the library"
    if adapters:
        names += " with " + ", ".join(f"{Path(path).name} (scale {scale:g})" for path, scale in adapters)
    if memory_budget is not None:
        from llamadesk.app.core.byte_sizes import format_bytes

        names += f" (memory budget {format_bytes(memory_budget)}, up to {max_models} models)"
    if args.parallel > 1:
        names += f", {args.parallel} replies at once"
    print(f"llamadesk: serving {names} on {_url(config.host, config.port)} (Ctrl-C stops)", file=sys.stderr)
    _say_other_apps_stores()
    server.run(sockets=sockets)
    return 0
