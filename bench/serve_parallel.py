"""Concurrent clients: `llamadesk serve --parallel 4` against `--parallel 1` and llama.cpp's llama-server.

Four clients each stream a chat reply (different questions, up to 128 tokens, temperature 0) at
the same time. Measured per run: aggregate generation tokens/s (every reply's completion tokens
over the wall time from the first request to the last reply's end) and the slowest client's wait.
Contenders, all on the same model file, threads and 2048-token context:

- `llamadesk serve` (one reply at a time: the others queue);
- `llamadesk serve --parallel 4` (the four replies decoded together, BatchedDecoder);
- llama.cpp's `llama-server -np 4 --kv-unified` (four slots sharing one cache, as ours do).

Runs are interleaved and their order reversed every other round, so a shared machine's drift hits
all alike; the ratios are per round, then their median.

Then a chat client asks while another client's document is being translated (POST /v1/translations,
the same model): one reply at a time, the reply waits for the whole document; with --parallel the
translation's segments are decoded beside it. Measured: the reply's time to first content and to
its end, and the translation's own time, on both llamadesk servers (llama-server has no
translation endpoint).

Writes "## serve --parallel" of RESULTS.md.

    .venv/bin/python bench/serve_parallel.py [--model smollm2] [--threads 2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from results_file import update_section  # noqa: E402
from serve import CONTEXT, N_GEN, llama_server, llama_server_binary, streamed_reply  # noqa: E402

from tests.serve_process import serving  # noqa: E402

CLIENTS = 4
QUESTIONS = [
    "Write a long story about a dragon who learns to bake bread.",
    "Explain in detail how a steam engine works.",
    "Describe a walk through a busy market in a city by the sea.",
    "Write a long letter to a friend about your summer holidays.",
]


def concurrent_run(url: str, model: str) -> dict:
    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        replies = list(
            pool.map(
                lambda question: streamed_reply(url, model, messages=[{"role": "user", "content": question}]),
                QUESTIONS,
            )
        )
    wall = time.perf_counter() - started
    tokens = sum(r["tokens"] for r in replies)
    return {"aggregate": tokens / wall, "tokens": tokens, "wall": wall, "slowest": max(r["seconds"] for r in replies)}


# Sixteen one-sentence paragraphs for the translation that runs while a chat client asks.
DOCUMENT = "\n\n".join(
    f"Paragraph {n}: the {thing} in the {place} is ready for you."
    for n, (thing, place) in enumerate(
        [(t, p) for t in ("report", "parcel", "ticket", "invoice") for p in ("office", "station", "shop", "garden")],
        start=1,
    )
)


def reply_during_translation(url: str, model: str, translation_model: str | None = None) -> dict:
    """A streamed chat reply (32 tokens) asked once another client's translation (on `model`, or
    on `translation_model`) is under way."""
    translated: dict[str, float] = {}

    def translate() -> None:
        started = time.perf_counter()
        body = {"text": DOCUMENT, "source": "en", "target": "fr", "model": translation_model or model}
        httpx.post(f"{url}/v1/translations", json=body, timeout=600).raise_for_status()
        translated["seconds"] = time.perf_counter() - started

    translator = threading.Thread(target=translate)
    translator.start()
    while not httpx.get(f"{url}/health", timeout=10).json()["busy"]:
        time.sleep(0.02)
    time.sleep(0.5)  # its first segments are being decoded
    reply = streamed_reply(url, model, max_tokens=32, messages=[{"role": "user", "content": QUESTIONS[0]}])
    translator.join()
    return {"ttfb": reply["ttfb"], "reply": reply["seconds"], "translation": translated["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from llamadesk.app.library.catalog import resolve_model

    binary = llama_server_binary()
    runs: dict[str, list[dict]] = {"one": [], "parallel": [], "reference": []}
    flags = ("--threads", str(args.threads))
    with (
        serving(*flags) as one_at_a_time,
        serving(*flags, "--parallel", str(CLIENTS)) as parallel,
        llama_server(binary, resolve_model(args.model), args.threads, slots=CLIENTS, context=CONTEXT) as reference,
    ):
        urls = {"one": one_at_a_time.url, "parallel": parallel.url, "reference": reference}
        # Only one server runs the model at a time, but all three are loaded: warm each up once.
        for url in urls.values():
            concurrent_run(url, args.model)
        for round_no in range(args.rounds):
            order = list(urls) if round_no % 2 == 0 else list(reversed(urls))
            for name in order:
                runs[name].append(concurrent_run(urls[name], args.model))
            print(
                f"round {round_no + 1}/{args.rounds}: "
                + ", ".join(f"{name} {runs[name][-1]['aggregate']:.1f} tok/s" for name in urls),
                file=sys.stderr,
            )
        beside: dict[str, list[dict]] = {"one": [], "parallel": []}
        for round_no in range(2):
            for name in ("one", "parallel") if round_no % 2 == 0 else ("parallel", "one"):
                beside[name].append(reply_during_translation(urls[name], args.model))

    def mean(name: str, key: str) -> float:
        return statistics.fmean(r[key] for r in runs[name])

    def beside_mean(name: str, key: str) -> float:
        return statistics.fmean(r[key] for r in beside[name])

    speedup = [p["aggregate"] / o["aggregate"] for p, o in zip(runs["parallel"], runs["one"], strict=True)]
    to_reference = [p["aggregate"] / r["aggregate"] for p, r in zip(runs["parallel"], runs["reference"], strict=True)]
    reference_gain = [r["aggregate"] / o["aggregate"] for r, o in zip(runs["reference"], runs["one"], strict=True)]
    lines = [
        f"Model `{args.model}`, {args.threads} threads, context {CONTEXT}, {args.rounds} interleaved rounds; "
        f"{CLIENTS} clients each stream a chat reply of up to {N_GEN} tokens at once (different questions, "
        "temperature 0).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| **`serve --parallel {CLIENTS}` / `serve` (one reply at a time), aggregate tokens/s, median of per-round "
        f"ratios** | **{statistics.median(speedup):.2f}x** (rounds: {', '.join(f'{r:.2f}' for r in speedup)}) |",
        f"| `serve --parallel {CLIENTS}` / llama.cpp's `llama-server -np {CLIENTS} --kv-unified`, aggregate, median "
        f"of per-round ratios | {statistics.median(to_reference):.3f} (rounds: "
        f"{', '.join(f'{r:.3f}' for r in to_reference)}) |",
        f"| llama-server -np {CLIENTS} / `serve` one at a time (llama.cpp's own gain) | "
        f"{statistics.median(reference_gain):.2f}x |",
        f"| `serve`, one reply at a time: aggregate; slowest client's wait | {mean('one', 'aggregate'):.1f} tok/s; "
        f"{mean('one', 'slowest'):.1f} s |",
        f"| `serve --parallel {CLIENTS}`: aggregate; slowest client's wait | "
        f"{mean('parallel', 'aggregate'):.1f} tok/s; {mean('parallel', 'slowest'):.1f} s |",
        f"| llama-server -np {CLIENTS}: aggregate; slowest client's wait | {mean('reference', 'aggregate'):.1f} "
        f"tok/s; {mean('reference', 'slowest'):.1f} s |",
        f"| tokens per run (mean; replies may end before {N_GEN}) | one {mean('one', 'tokens'):.0f}, parallel "
        f"{mean('parallel', 'tokens'):.0f}, llama-server {mean('reference', 'tokens'):.0f} |",
        "",
        "A chat client asks (a streamed reply of 32 tokens) while another client's 16-paragraph document is "
        "being translated on the same model (mean of 2 runs each):",
        "",
        "| | reply's first content | reply's end | the translation |",
        "|---|---|---|---|",
        f"| `serve`, one at a time | {beside_mean('one', 'ttfb'):.1f} s | {beside_mean('one', 'reply'):.1f} s | "
        f"{beside_mean('one', 'translation'):.1f} s |",
        f"| `serve --parallel {CLIENTS}` (the translation's segments beside the reply) | "
        f"{beside_mean('parallel', 'ttfb'):.1f} s | {beside_mean('parallel', 'reply'):.1f} s | "
        f"{beside_mean('parallel', 'translation'):.1f} s |",
        "",
        f"Load average during the run: {' / '.join(f'{x:.1f}' for x in psutil.getloadavg())} "
        f"on {psutil.cpu_count()} CPUs (a shared machine: compare ratios, not absolute rates).",
        "",
        f"Command: `.venv/bin/python bench/serve_parallel.py --model {args.model} --threads {args.threads} "
        f"--rounds {args.rounds}`",
    ]
    update_section("serve --parallel", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
