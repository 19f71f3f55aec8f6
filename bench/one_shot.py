"""A one-shot `llamadesk chat PROMPT`: wall time and peak memory with its context sized for the
reply (the default since this script) against the model's whole context (`--ctx N`).

A one-shot reply holds only its prompt and `--max-tokens`, so the chat command sizes the context
for them (app/engine/fitted_settings.py, context_ceiling): less KV cache for llama.cpp to allocate
and clear before the first token. Runs alternate between the two settings, in fresh processes
(the whole command as a user runs it: imports, model load, one reply); /usr/bin/time's wall
seconds and maximum resident set size.

Writes the "## one-shot chat" section of bench/RESULTS.md.

    .venv/bin/python bench/one_shot.py [--model smollm2] [--rounds 10] [--max-tokens 1] [--full-ctx 8192]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import command_line, update_section  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
LLAMADESK = REPO / ".venv" / "bin" / "llamadesk"
PROMPT = "What is the capital of France?"


def timed_chat(model: str, max_tokens: int, extra: list[str], home: str) -> tuple[float, float]:
    """One chat command's wall seconds and peak RSS in MiB, as /usr/bin/time measures them."""
    command = ["/usr/bin/time", "-f", "%e %M", str(LLAMADESK), "chat", "-m", model, "--threads", "1"]
    command += ["--temperature", "0", "--max-tokens", str(max_tokens), *extra, PROMPT]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "LLAMADESK_HOME": home})
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    seconds, kilobytes = done.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kilobytes) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=1)
    parser.add_argument("--full-ctx", type=int, default=8192)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    runs: dict[str, list[tuple[float, float]]] = {"sized": [], "full": []}
    with tempfile.TemporaryDirectory() as home:
        timed_chat(args.model, args.max_tokens, [], home)  # warm the page cache and the library
        for round_number in range(args.rounds):
            order = ("sized", "full") if round_number % 2 == 0 else ("full", "sized")
            for kind in order:
                extra = [] if kind == "sized" else ["--ctx", str(args.full_ctx)]
                runs[kind].append(timed_chat(args.model, args.max_tokens, extra, home))
    rows = []
    for kind, label in (("sized", "sized for the reply (default)"), ("full", f"--ctx {args.full_ctx}")):
        seconds = statistics.median(s for s, _ in runs[kind])
        memory = statistics.median(m for _, m in runs[kind])
        rows.append((label, seconds, memory))
    (_, sized_s, sized_m), (_, full_s, full_m) = rows
    body = "\n".join(
        [
            f"Model `{args.model}`, 1 thread, `llamadesk chat --max-tokens {args.max_tokens} {PROMPT!r}` in a fresh "
            f"process each time, {args.rounds} alternating rounds; medians of /usr/bin/time's wall time and peak "
            "resident memory.",
            "",
            "| context | wall time (s) | peak memory (MiB) |",
            "|---|---|---|",
            *(f"| {label} | {seconds:.2f} | {memory:.0f} |" for label, seconds, memory in rows),
            "",
            f"Sized / whole context: {sized_s / full_s:.2f} of the time, {sized_m / full_m:.2f} of the memory. "
            "The reply is the same either way (tests/test_cli.py checks it against `--ctx 8192`).",
            "",
            command_line("one_shot.py", parser, args),
        ]
    )
    print(body)
    if not args.no_write:
        update_section("one-shot chat", body)


if __name__ == "__main__":
    main()
