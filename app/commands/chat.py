"""`llamadesk chat`: stream a reply to stdout, or talk in a simple REPL."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator

from llamadesk.app.chat.context_fit import fit_context
from llamadesk.app.commands.options import add_load_options, add_lora_option, add_model_option, load_settings
from llamadesk.app.core.errors import BadInputError, Interrupted
from llamadesk.app.engine.types import ChatMessage, GenerationStats, Sampling, TextPiece
from llamadesk.app.settings.chat_defaults import (
    DEFAULT_REPEAT_PENALTY,
    DEFAULT_SYSTEM_PROMPT,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
)

EXAMPLES = """examples:
  llamadesk chat -m smollm2 --temperature 0 "What is the capital of France?"
  echo "Write a haiku about tea" | llamadesk chat --stats
  llamadesk chat -m ./my-model.Q4_K_M.gguf --system "You answer in French."   (interactive)
  llamadesk chat -m smollm2 --lora ./my-lora.gguf:0.8 "Summarize: ..."   (a fine-tune's LoRA adapter)
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "chat",
        help="chat with a model (one prompt, piped text, or interactive)",
        description=(
            "Stream a model's reply to PROMPT. Without PROMPT, reads piped stdin; on a terminal, starts a chat."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("prompt", nargs="*", help="what to ask (joined with spaces)")
    add_model_option(parser)
    parser.add_argument(
        "--system",
        default=DEFAULT_SYSTEM_PROMPT,
        help=f'system prompt (default: "{DEFAULT_SYSTEM_PROMPT}"; "" leaves it to the chat template)',
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=DEFAULT_TEMPERATURE,
        help=f"0 is greedy and reproducible (default: {DEFAULT_TEMPERATURE})",
    )
    parser.add_argument(
        "--top-p", type=float, default=DEFAULT_TOP_P, help=f"nucleus sampling threshold (default: {DEFAULT_TOP_P})"
    )
    parser.add_argument(
        "--repeat-penalty",
        type=float,
        default=DEFAULT_REPEAT_PENALTY,
        help=f"penalty for repeating recent tokens, 1 is none (default: {DEFAULT_REPEAT_PENALTY})",
    )
    parser.add_argument("--seed", type=int, help="random seed for sampling")
    parser.add_argument("--max-tokens", type=int, help="stop the reply after this many tokens")
    parser.add_argument("--stats", action="store_true", help="print speed and context use to stderr after each reply")
    add_lora_option(parser)
    add_load_options(parser)
    parser.set_defaults(handler=run)


@contextlib.contextmanager
def ctrl_c_stops(engine) -> Iterator[list[bool]]:
    """While a reply streams, Ctrl-C stops it (cleanly, mid-decode) instead of raising."""
    pressed: list[bool] = []

    def on_sigint(_signum, _frame):
        pressed.append(True)
        engine.request_stop()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def format_stats(stats: GenerationStats) -> str:
    return (
        f"[{stats.generated_tokens} tokens, {stats.generated_tokens_per_second:.1f} tok/s; "
        f"prompt {stats.prompt_tokens} tokens ({stats.cached_prompt_tokens} cached), "
        f"{stats.prompt_tokens_per_second:.1f} tok/s; first token {stats.time_to_first_token * 1000:.0f} ms; "
        f"context {stats.context_tokens}/{stats.n_ctx}; {stats.stop_reason}]"
    )


def stream_reply(engine, messages: list[ChatMessage], sampling: Sampling, show_stats: bool) -> tuple[str, bool]:
    """Print the reply as it streams; return its text and whether Ctrl-C stopped it."""
    parts: list[str] = []
    with ctrl_c_stops(engine) as pressed:
        for event in engine.stream_chat(messages, sampling):
            if isinstance(event, TextPiece):
                parts.append(event.text)
                sys.stdout.write(event.text)
                sys.stdout.flush()
            else:
                sys.stdout.write("\n")
                sys.stdout.flush()
                if show_stats:
                    print(format_stats(event.stats), file=sys.stderr)
    return "".join(parts), bool(pressed)


def run(args: argparse.Namespace) -> int:
    from llamadesk.app.core.value_ranges import MAX_TOKENS, REPEAT_PENALTY, TEMPERATURE, TOP_P
    from llamadesk.app.engine.llama_engine import Engine  # loads llama.cpp: only when a model is needed
    from llamadesk.app.library.catalog import resolve_model

    # The same ranges as config.json and the app's settings form.
    TEMPERATURE.check(args.temperature, "--temperature")
    TOP_P.check(args.top_p, "--top-p")
    REPEAT_PENALTY.check(args.repeat_penalty, "--repeat-penalty")
    if args.max_tokens is not None:
        MAX_TOKENS.check(args.max_tokens, "--max-tokens")
    prompt = " ".join(args.prompt)
    interactive = not prompt and sys.stdin.isatty()
    if not prompt and not interactive:
        prompt = sys.stdin.read().strip()
        if not prompt:
            raise BadInputError("nothing to answer: give a PROMPT or pipe text on stdin")

    path = resolve_model(args.model)
    sampling = Sampling(
        temperature=args.temperature,
        top_p=args.top_p,
        repeat_penalty=args.repeat_penalty,
        seed=args.seed,
        max_tokens=args.max_tokens,
    )
    with Engine.load(path, load_settings(args)) as engine:
        history: list[ChatMessage] = [{"role": "system", "content": args.system}] if args.system else []
        if not interactive:
            history.append({"role": "user", "content": prompt})
            _, stopped = stream_reply(engine, history, sampling, args.stats)
            if stopped:
                raise Interrupted("stopped")
            return 0
        return repl(engine, args.system, sampling, args.stats)


def repl(engine, system_prompt: str, sampling: Sampling, show_stats: bool) -> int:
    """An interactive chat. When it outgrows the context, the oldest turns are dropped from what the
    model sees (chat.context_fit, as in the app), so a long chat keeps answering instead of failing."""
    print(f"Chatting with {engine.summary.name}. Ctrl-C stops a reply; Ctrl-D or /bye leaves.", file=sys.stderr)
    turns: list[ChatMessage] = []
    memory_start = 0
    while True:
        try:
            line = input(">>> ")
        except EOFError:
            print(file=sys.stderr)
            return 0
        except KeyboardInterrupt:
            print(file=sys.stderr)
            continue
        if line.strip() in ("/bye", "/exit", "/quit"):
            return 0
        if not line.strip():
            continue
        turns.append({"role": "user", "content": line})
        try:
            with ctrl_c_stops(engine):  # a template that renders for long stops on Ctrl-C too
                fitted = fit_context(
                    system_prompt,
                    turns,
                    lambda messages: len(engine.chat_prompt_tokens(messages)),
                    engine.n_ctx,
                    sampling.max_tokens,
                    memory_start,
                )
            if fitted.memory_start > memory_start:
                print(f"(the model no longer sees the {fitted.memory_start} oldest messages)", file=sys.stderr)
            memory_start = fitted.memory_start
            reply, _ = stream_reply(engine, fitted.messages, sampling, show_stats)
        except (BadInputError, Interrupted) as err:
            # The model's chat template refused or failed on this turn (or Ctrl-C stopped it while
            # it rendered): nothing was said, so the turn is taken back and the chat goes on.
            turns.pop()
            print(f"llamadesk: {err}", file=sys.stderr)
            continue
        turns.append({"role": "assistant", "content": reply})
