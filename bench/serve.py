"""`llamadesk serve` against llama.cpp's own llama-server and the engine it serves.

- one client, streaming: generation tokens/s through `llamadesk serve` vs `llamadesk bench`'s tg on
  the same model, threads and kernels (the issue's goal: >= 0.95), from position 0 and after the
  chat prompt's tokens (`-d`, the same decoding work as the reply's); the same against llama.cpp's
  llama-server (built from the same llama.cpp source, bench/build_llama_server.sh) on the same model
  file, threads, context, one slot, the same chat request; against the engine streaming the same
  reply in a child process (no HTTP: what the server itself costs); and against llama.cpp's
  llama-bench tg at the chat prompt's depth (`-d`): a reply's tokens come after its prompt, where
  they attend over more cache cells than tg's tokens from position 0. Time to first content byte
  for both servers.
- 4 concurrent streaming clients: aggregate tokens/s (one model, one reply at a time), against the
  same four replies asked one after another, in alternating rounds: the queue must not cost
  throughput; bench/serve_parallel.py measures
  `serve --parallel 4`, which decodes them together);
- load: C clients sending R requests in total (short replies, streamed and not): errors, malformed
  streams, and the server's RSS growth after warm-up (goal: zero, zero, < 5%).

On this shared 2-core machine one 128-token run moves by about 10% from the next, and the drift is
fast, so the single-client figures come in tight sets: one run of each contender, back to back (a
few seconds apart), in a rotating order (every contender in every position equally often). Each
ratio is the median over the sets of the ratio within a set, with a bootstrap 95% interval of that
median (as bench/chat_path.py does). Writes the "## serve" section of bench/RESULTS.md.

    .venv/bin/python bench/serve.py [--model smollm2] [--threads 1] [--sets 30] [--requests 200] [--clients 8]
        [--flash-attn off]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from chat_path import bootstrap_median_interval  # noqa: E402
from engine import llama_tools_bin, run_reference  # noqa: E402
from results_file import update_section  # noqa: E402

from tests.serve_process import PINNED_FLAGS, free_port, serving  # noqa: E402

LLAMADESK = Path(sys.executable).with_name("llamadesk")
ROOT = Path(__file__).resolve().parent.parent
N_GEN = 128
PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to bake bread."}]


def pinned(flag: str) -> str:
    """The value tests/serve_process.py pins the server's `flag` to."""
    return PINNED_FLAGS[PINNED_FLAGS.index(flag) + 1]


# The server's context and cache, pinned the same way for `llamadesk bench` and the engine. Flash
# attention is an option (--flash-attn): on the CPU it changes how a token's cost grows with its position.
CONTEXT = int(pinned("--ctx"))
KV_TYPE = pinned("--kv-type")


def bench_tg(model: str, threads: int, flash_attn: str, depth: int = 0) -> float:
    """One `llamadesk bench` tg run (after its own warm-up), with the server's context, kernels and cache
    type, from position 0 or after `depth` tokens."""
    out = subprocess.run(
        [str(LLAMADESK), "bench", "-m", model, "--threads", str(threads), "-p", "0", "-n", str(N_GEN), "-r", "1"]
        + ["-d", str(depth), "--batched", "0", "--ctx", str(CONTEXT), "--flash-attn", flash_attn]
        + ["--kv-type", KV_TYPE, "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    return next(row["avg_ts"] for row in json.loads(out.stdout) if row["test"].startswith("tg"))


def engine_rate(model: str, threads: int, flash_attn: str) -> float:
    """The same reply straight from the engine (sampling included, no HTTP), in a child process so that
    its model is not in memory while the server runs."""
    code = (
        "import sys, json\n"
        "from llamadesk.app.engine.llama_engine import Engine\n"
        "from llamadesk.app.engine.types import GenerationDone, LoadSettings, Sampling\n"
        "from llamadesk.app.library.catalog import resolve_model\n"
        f"engine = Engine.load(resolve_model({model!r}), LoadSettings(n_ctx={CONTEXT}, n_threads={threads}, "
        f"flash_attn={flash_attn == 'on'}, kv_cache_type={KV_TYPE!r}))\n"
        f"events = engine.stream_chat({PROMPT!r}, Sampling(temperature=0, top_p=1.0, max_tokens={N_GEN}))\n"
        "print([e.stats.generated_tokens_per_second for e in events if isinstance(e, GenerationDone)][0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def streamed_reply(url: str, model: str, max_tokens: int = N_GEN, messages: list[dict] | None = None) -> dict:
    """One streamed chat reply: time to first content, generation rate after it, and its tokens."""
    body = {
        "model": model,
        "messages": messages or PROMPT,
        "temperature": 0,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first = last = None
    tokens = pieces = prompt_tokens = 0
    done = False
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=600) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line.removeprefix("data:").strip()
            if data == "[DONE]":
                done = True
                break
            chunk = json.loads(data)
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
                prompt_tokens = chunk["usage"]["prompt_tokens"]
            elif chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                now = time.perf_counter()
                first = first or now
                last = now
                pieces += 1
    if not done or first is None:
        raise RuntimeError("a stream ended without [DONE] or without content")
    tokens = tokens or pieces  # a server that sends no usage sends a token per chunk
    rate = (tokens - 1) / (last - first) if tokens > 1 and last > first else 0.0
    return {
        "ttfb": first - started,
        "rate": rate,
        "tokens": tokens,
        "prompt_tokens": prompt_tokens,
        "seconds": time.perf_counter() - started,
    }


def llama_server_binary() -> Path:
    out = subprocess.run(
        ["bench/build_llama_server.sh", sys.executable], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return Path(out.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def llama_server(
    binary: Path, model: Path, threads: int, slots: int = 1, context: int = CONTEXT, flash_attn: str = "on"
) -> Iterator[str]:
    """llama.cpp's server on the same model, threads, context and kernels, one slot by default (one reply
    at a time, as llamadesk serve runs them), its chat template through --jinja as llamadesk renders
    templates."""
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)  # noqa: SIM115
    argv = [str(binary), "-m", str(model), "-t", str(threads), "-tb", str(threads), "-c", str(context)]
    argv += ["-np", str(slots), "--kv-unified"] if slots > 1 else ["-np", "1"]  # slots share one cache, as ours do
    argv += ["-fa", flash_attn, "--jinja", "--no-webui", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"llama-server exited with {process.returncode}: {Path(log.name).read_text()[-2000:]}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("llama-server did not start in 120 s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(30)
        Path(log.name).unlink(missing_ok=True)


def load_test(url: str, model: str, clients: int, requests: int, pid: int) -> dict:
    """`requests` short replies from `clients` threads; RSS after the first tenth vs at the end."""
    errors: list[str] = []
    process = psutil.Process(pid)

    def one(i: int) -> None:
        body = {"model": model, "messages": [{"role": "user", "content": f"Say {i}."}], "max_tokens": 8}
        try:
            if i % 2:
                reply = streamed_reply(url, model, max_tokens=8)
                assert reply["tokens"] > 0
            else:
                r = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600)
                r.raise_for_status()
                assert r.json()["choices"][0]["message"]["role"] == "assistant"
        except Exception as err:  # counted, not raised: the point is how many
            errors.append(f"{type(err).__name__}: {err}")

    warm = max(requests // 10, clients)
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(warm)))
    rss_warm = process.memory_info().rss
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(warm, requests)))
    seconds = time.perf_counter() - started
    rss_end = process.memory_info().rss
    return {
        "errors": errors,
        "seconds": seconds,
        "rss_warm": rss_warm,
        "rss_end": rss_end,
        "growth": rss_end / rss_warm - 1,
        "n": requests - warm,
    }


QUEUE_ROUNDS = 6


def four_replies(url: str, model: str, at_once: bool) -> float:
    """Aggregate tokens/s of four streamed replies: from four clients at once, or one after another."""
    started = time.perf_counter()
    if at_once:
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda _: streamed_reply(url, model), range(4)))
    else:
        replies = [streamed_reply(url, model) for _ in range(4)]
    return sum(r["tokens"] for r in replies) / (time.perf_counter() - started)


# Each set runs its six contenders in one of these orders, in turn: every rotation of the list
# and of its reverse, so each contender takes each position equally often.
CONTENDERS = ("serve", "bench", "bench-deep", "deep", "engine", "llama-server")
ORDERS = [CONTENDERS[i:] + CONTENDERS[:i] for i in range(len(CONTENDERS))]
ORDERS += [tuple(reversed(order)) for order in ORDERS]


def ratio_row(label: str, ratios: list[float]) -> str:
    low, high = bootstrap_median_interval(ratios)
    spread = f"{min(ratios):.2f} - {max(ratios):.2f}"
    return f"| {label} | {statistics.median(ratios):.3f} | {low:.3f} - {high:.3f} | {spread} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sets", type=int, default=30)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--flash-attn",
        choices=("on", "off"),
        default="off",
        help="the attention kernel of every contender (default: off, llamadesk's own choice on the CPU for a "
        "model whose every layer attends over the whole context, as smollm2's do; tests/serve_process.py pins on)",
    )
    args = parser.parse_args()
    flash_attn = args.flash_attn
    if args.sets < 2:
        parser.error("--sets must be at least 2")

    from llamadesk.app.library.catalog import resolve_model

    binary = llama_server_binary()
    llama_bench = llama_tools_bin() / "llama-bench"
    model_path = resolve_model(args.model)
    started = time.time()
    rates: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    server_runs: list[dict] = []
    reference_runs: list[dict] = []
    with (
        serving(
            "--threads", str(args.threads), "--queue-size", str(max(16, args.clients)), "--flash-attn", flash_attn
        ) as served,
        llama_server(binary, model_path, args.threads, flash_attn=flash_attn) as reference_url,
    ):
        depth = streamed_reply(served.url, args.model)["prompt_tokens"]  # warm-up: load the model
        streamed_reply(reference_url, args.model)

        def serve() -> float:
            server_runs.append(streamed_reply(served.url, args.model))
            return server_runs[-1]["rate"]

        def reference() -> float:
            reference_runs.append(streamed_reply(reference_url, args.model))
            return reference_runs[-1]["rate"]

        def deep() -> float:  # llama-bench's tg128 (N_GEN) after `depth` tokens, one repetition
            return run_reference(llama_bench, str(model_path), args.threads, 1, depth, flash_attn == "on")["tg128@d"][0]

        run = {
            "serve": serve,
            "bench": lambda: bench_tg(args.model, args.threads, flash_attn),
            "bench-deep": lambda: bench_tg(args.model, args.threads, flash_attn, depth),
            "deep": deep,
            "engine": lambda: engine_rate(args.model, args.threads, flash_attn),
            "llama-server": reference,
        }
        for set_no in range(args.sets):
            for name in ORDERS[set_no % len(ORDERS)]:
                rates[name].append(run[name]())
            print(
                f"set {set_no + 1}/{args.sets}: "
                + ", ".join(f"{name} {values[-1]:.1f}" for name, values in rates.items())
                + f"; serve / bench {rates['serve'][-1] / rates['bench'][-1]:.3f}",
                file=sys.stderr,
            )
        concurrent_rates, one_by_one_rates = [], []
        for round_no in range(QUEUE_ROUNDS):
            for at_once in (True, False) if round_no % 2 == 0 else (False, True):
                (concurrent_rates if at_once else one_by_one_rates).append(
                    four_replies(served.url, args.model, at_once)
                )
        aggregate = statistics.median(concurrent_rates)
        queue_ratios = [a / b for a, b in zip(concurrent_rates, one_by_one_rates, strict=True)]
        load = load_test(served.url, args.model, args.clients, args.requests, served.process.pid)

    def to(other: str, of: str = "serve") -> list[float]:
        return [a / b for a, b in zip(rates[of], rates[other], strict=True)]

    minutes = (time.time() - started) / 60
    median = {name: statistics.median(values) for name, values in rates.items()}
    ttfb = statistics.median(r["ttfb"] for r in server_runs)
    reference_ttfb = statistics.median(r["ttfb"] for r in reference_runs)
    lines = [
        f"Model `{args.model}` ({model_path.name}), {args.threads} thread(s), {args.sets} sets; chat replies of up to "
        f"{N_GEN} tokens to a {depth}-token chat prompt, streamed (SSE), temperature 0. Every contender with "
        f"flash attention {flash_attn}, an {KV_TYPE} KV cache and batch 512, and a {CONTEXT}-token context but "
        "llama-bench (which sizes its own). A set is one run of each, back to back, in a rotating order; a "
        "ratio is the median over the sets of the ratio within a set, with a bootstrap 95% interval of that median.",
        "",
        "| ratio (one streaming client) | median of sets | 95% interval | single sets |",
        "|---|---|---|---|",
        ratio_row(f"**through `llamadesk serve` / `llamadesk bench` tg{N_GEN}** (goal >= 0.95)", to("bench")),
        ratio_row(
            f"**through `llamadesk serve` / `llamadesk bench -d {depth}` tg{N_GEN}** (after the chat prompt: "
            "the same decoding work)",
            to("bench-deep"),
        ),
        ratio_row(
            f"through `llamadesk serve` / llama.cpp's `llama-bench` tg{N_GEN} after the chat prompt (`-d {depth}`): "
            "the same decoding work",
            to("deep"),
        ),
        ratio_row("through `llamadesk serve` / the engine streaming the same reply, no HTTP", to("engine")),
        ratio_row("through `llamadesk serve` / through llama.cpp's `llama-server` (-np 1)", to("llama-server")),
        ratio_row(
            f"`llama-bench` tg{N_GEN} -d {depth} / `llamadesk bench` tg{N_GEN} (the reply's depth alone)",
            to("bench", of="deep"),
        ),
        ratio_row(
            f"`llamadesk bench -d {depth}` / `llamadesk bench` tg{N_GEN} (the same, measured by llamadesk)",
            to("bench", of="bench-deep"),
        ),
        "",
        "| measure | value |",
        "|---|---|",
        f"| through the server, one client (median) | {median['serve']:.1f} tok/s |",
        f"| `llamadesk bench` tg{N_GEN} (median) | {median['bench']:.1f} tok/s |",
        f"| `llamadesk bench -d {depth}` tg{N_GEN} (median) | {median['bench-deep']:.1f} tok/s |",
        f"| `llama-bench` tg{N_GEN} -d {depth} (median) | {median['deep']:.1f} tok/s |",
        f"| the engine streaming the same reply, no HTTP (median) | {median['engine']:.1f} tok/s |",
        f"| llama-server, one client (median) | {median['llama-server']:.1f} tok/s |",
        f"| time to first content byte (median; includes the prompt) | {ttfb * 1000:.0f} ms |",
        f"| llama-server time to first content byte (median) | {reference_ttfb * 1000:.0f} ms |",
        f"| 4 concurrent streaming clients, aggregate (median of {QUEUE_ROUNDS} rounds; the prompts' time "
        f"included) | {aggregate:.1f} tok/s |",
        f"| the same, against the four replies asked one after another (median of per-round ratios) | "
        f"{statistics.median(queue_ratios):.3f} (rounds: {', '.join(f'{r:.2f}' for r in queue_ratios)}) |",
        f"| load: {args.clients} clients, {args.requests} requests (short, streamed and not) | "
        f"{len(load['errors'])} errors, {load['n'] / load['seconds']:.1f} requests/s after warm-up |",
        f"| server RSS after warm-up → end | {load['rss_warm'] / 2**20:.0f} → {load['rss_end'] / 2**20:.0f} MiB "
        f"({load['growth'] * 100:+.1f}%; goal < 5%) |",
        "",
        f"Load average at the end: {' / '.join(f'{x:.1f}' for x in psutil.getloadavg())} "
        f"on {psutil.cpu_count()} CPUs (a shared machine: compare ratios, not absolute rates). {minutes:.0f} minutes.",
        "",
        f"Command: `.venv/bin/python bench/serve.py --model {args.model} --threads {args.threads} "
        f"--sets {args.sets} --requests {args.requests} --clients {args.clients} --flash-attn {flash_attn}`",
    ]
    if load["errors"]:
        lines += ["", "First errors: " + "; ".join(load["errors"][:3])]
    update_section("serve", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
