"""The terminal UI against the engine alone, and the UI's own costs.

    .venv/bin/python bench/tui.py [--threads N] [--reps 3] [--turns 200]

1. Throughput: tokens per second that reach the screen in the TUI (Enter pressed -> last token
   rendered) against the engine alone streaming the same reply (same model, prompt, greedy
   sampling, same number of tokens), as a ratio (goal >= 0.95).
2. Input latency while a reply streams: a key event sent to the app -> the prompt box holds the
   character (goal p99 < 50 ms).
3. Cold start: `llamadesk` launched in a real terminal (tmux) -> the prompt box is on screen
   (goal < 1 s; the model loads in the engine's thread after that).
4. Memory after 200 turns of a conversation that overflows the context (a fake model with the
   Engine's interface, so 200 turns take seconds): RSS after turn 20 vs after the last turn
   (goal: flat, < 5% growth).

Writes the figures and this command to bench/RESULTS.md under "## tui" (other sections kept).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Everything this script writes (homes, stores) lives here and goes when it ends.
SCRATCH = Path(tempfile.mkdtemp(prefix="llamadesk-bench-tui-"))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)
os.environ.setdefault("LLAMADESK_HOME", str(SCRATCH / "home"))

import psutil  # noqa: E402
from textual import events  # noqa: E402

from llamadesk.app.chat.store import Store  # noqa: E402
from llamadesk.app.engine.llama_engine import Engine  # noqa: E402
from llamadesk.app.engine.types import GenerationDone, GenerationStats, LoadSettings, Sampling, TextPiece  # noqa: E402
from llamadesk.app.library.starters import starter_path  # noqa: E402
from llamadesk.app.settings.user_config import Config  # noqa: E402
from llamadesk.app.tui.app import LlamadeskApp  # noqa: E402
from llamadesk.app.tui.engine_host import EngineHost, ReplyDone, ReplyRequest  # noqa: E402
from llamadesk.app.tui.screens.chat import sampling_for  # noqa: E402
from llamadesk.app.tui.widgets.prompt_box import PromptBox  # noqa: E402

PROMPT = "Write a long story about a dragon who learns to cook."
SYSTEM = "You are a helpful assistant."
MAX_TOKENS = 256
LLAMADESK = Path(sys.executable).with_name("llamadesk")
TMUX = ("tmux", "-L", "llamadesk-bench")  # a server of our own, apart from other tmux users


async def until(condition, timeout: float = 300.0, poll: float = 0.0005) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("the app did not get there in time")
        await asyncio.sleep(poll)


# -- 1. throughput --------------------------------------------------------------------------


def engine_alone(engine: Engine, sampling: Sampling) -> tuple[float, int]:
    """Seconds from request to the last token, and tokens generated."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    start = time.perf_counter()
    for event in engine.stream_chat(messages, sampling):
        if isinstance(event, GenerationDone):
            return time.perf_counter() - start, event.stats.generated_tokens
    raise AssertionError("no GenerationDone")


async def tui_reply(app: LlamadeskApp, pilot) -> tuple[float, int, float, int]:
    """Seconds from Enter to the full reply rendered on screen, tokens generated, the UI thread's
    CPU seconds meanwhile, and how many times the streaming reply was redrawn."""
    screen = app.screen
    await until(lambda: screen.facts.backend is not None)
    screen.action_new_conversation()
    await pilot.pause()
    box = screen.query_one(PromptBox)
    box.text = PROMPT
    # As when a person presses Enter: what they typed is already drawn and the app is idle.
    await pilot.pause()
    await asyncio.sleep(0.2)
    finished: list[float] = []
    frames: list[None] = []
    finish_reply, flush_reply = screen._finish_reply, screen._flush_reply

    async def noting_the_end(reply, text, interrupted) -> None:
        # The reply's final full render is mounted: the last token is on screen.
        await finish_reply(reply, text, interrupted)
        finished.append(time.perf_counter())
        finished.append(time.thread_time())  # this runs on the UI's thread

    async def counting_frames(reply) -> None:
        frames.append(None)
        await flush_reply(reply)

    # Instance attributes, gone with `del` below.
    screen._finish_reply, screen._flush_reply = noting_the_end, counting_frames
    cpu_start = time.thread_time()
    start = time.perf_counter()
    box.post_message(PromptBox.Submitted(box, PROMPT))
    # Polled slowly: the end time comes from the app itself, and a tight loop on the app's own
    # event loop would take CPU from the engine and count against the UI.
    await until(lambda: bool(finished), poll=0.05)
    del screen._finish_reply, screen._flush_reply
    return finished[0] - start, screen.last_stats.generated_tokens, finished[1] - cpu_start, len(frames)


class _DoneSink:
    """Stands where the UI would, for the engine's thread alone: notes when the reply is done."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.finished = 0.0
        self.tokens = 0

    def post_message(self, message) -> bool:
        if isinstance(message, ReplyDone):
            self.finished, self.tokens = time.perf_counter(), message.stats.generated_tokens
            self.done.set()
        return True


def engine_in_host_thread(host: EngineHost, settings: LoadSettings, sampling: Sampling) -> tuple[float, int]:
    """The control: the engine in EngineHost's thread, as in the app, with no UI drawing it."""
    sink = _DoneSink()
    start = time.perf_counter()
    host.reply(ReplyRequest("smollm2", settings, SYSTEM, ({"role": "user", "content": PROMPT},), sampling), sink)
    sink.done.wait()
    return sink.finished - start, sink.tokens


def measure_throughput(threads: int, reps: int) -> dict:
    """Engine alone, engine in the host thread without UI, and the TUI, interleaved (A B C A B C
    ...), so a busy machine's drift hits all three."""
    config = Config(temperature=0.0, max_tokens=MAX_TOKENS, context_length=2048, system_prompt=SYSTEM)
    sampling = sampling_for(config.conversation_settings())  # exactly what the TUI will ask for
    settings = LoadSettings(n_ctx=2048, n_threads=threads)
    alone: list[tuple[float, int]] = []
    hosted: list[tuple[float, int]] = []
    shown: list[tuple[float, int]] = []
    host = EngineHost()
    host_thread = threading.Thread(target=host.serve)
    host_thread.start()
    ui_cpu: list[float] = []
    frame_counts: list[int] = []

    async def run() -> None:
        app = LlamadeskApp(
            store=Store(Path(tempfile.mkdtemp(dir=SCRATCH)) / "bench.sqlite3"),
            config=config,
            save_settings=False,
            load_defaults=LoadSettings(n_threads=threads),
        )
        with Engine.load(starter_path("smollm2"), settings) as engine:
            async with app.run_test(size=(120, 40)) as pilot:
                engine_alone(engine, sampling)  # warm-ups: caches, the prompt in each KV cache
                engine_in_host_thread(host, settings, sampling)
                await tui_reply(app, pilot)
                frames: list[int] = []
                for _ in range(reps):
                    alone.append(engine_alone(engine, sampling))
                    hosted.append(engine_in_host_thread(host, settings, sampling))
                    elapsed, tokens, cpu, drawn = await tui_reply(app, pilot)
                    shown.append((elapsed, tokens))
                    ui_cpu.append(cpu)
                    frames.append(drawn)
                frame_counts.extend(frames)

    asyncio.run(run())
    host.shutdown()
    host_thread.join()
    ratios = [
        (n_tui / t_tui) / (n_alone / t_alone) for (t_alone, n_alone), (t_tui, n_tui) in zip(alone, shown, strict=False)
    ]
    host_ratios = [(n_h / t_h) / (n_a / t_a) for (t_a, n_a), (t_h, n_h) in zip(alone, hosted, strict=False)]
    return {
        "tokens": alone[0][1],
        "tui_tokens": [n for _, n in shown],
        "engine_tok_s": statistics.median(n / t for t, n in alone),
        "tui_tok_s": statistics.median(n / t for t, n in shown),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "host_tok_s": statistics.median(n / t for t, n in hosted),
        "host_ratio": statistics.median(host_ratios),
        "host_ratios": host_ratios,
        "ui_cpu_share": statistics.median(c / t for c, (t, _) in zip(ui_cpu, shown, strict=False)),
        "frames_per_s": statistics.median(f / t for f, (t, _) in zip(frame_counts, shown, strict=False)),
    }


# -- 2. input latency while streaming -------------------------------------------------------


def measure_input_latency(threads: int, keys: int = 200) -> dict:
    latencies: list[float] = []
    tokens_during: list[int] = []

    async def run() -> None:
        config = Config(temperature=0.7, max_tokens=2000, context_length=4096)
        app = LlamadeskApp(
            store=Store(Path(tempfile.mkdtemp(dir=SCRATCH)) / "bench.sqlite3"),
            config=config,
            save_settings=False,
            load_defaults=LoadSettings(n_threads=threads),
        )
        async with app.run_test(size=(120, 40)) as pilot:
            screen = app.screen
            await until(lambda: screen.facts.backend is not None)
            box = screen.query_one(PromptBox)
            box.text = PROMPT + " Make it at least ten chapters long."
            await pilot.press("enter")
            await until(lambda: screen.reply is not None and len(screen.reply.text) > 0)
            start_len = len(screen.reply.text)
            for _ in range(keys):
                if screen.reply is None:  # the reply ended: start another so keys still land mid-stream
                    box.text = PROMPT
                    await pilot.press("enter")
                    await until(lambda: screen.reply is not None and len(screen.reply.text) > 0)
                box.focus()
                before = box.text
                sent = time.perf_counter()
                key = events.Key("x", "x")
                key.set_sender(app)
                app._driver.send_message(key)
                await until(lambda before=before: box.text != before)
                latencies.append(time.perf_counter() - sent)
                await asyncio.sleep(0.02)  # a fast typist: 50 keys per second
            tokens_during.append(len(screen.reply.text) - start_len if screen.reply else 0)
            screen.action_stop()

    asyncio.run(run())
    latencies.sort()
    return {
        "keys": len(latencies),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "max_ms": 1000 * latencies[-1],
    }


# -- 3. cold start --------------------------------------------------------------------------


def new_tmux_session(name: str, command: str) -> None:
    """Start a session; tmux refuses while the server of the last killed session is still
    exiting ("server exited unexpectedly"), so try a few times."""
    for _ in range(5):
        started = subprocess.run(
            [*TMUX, "new-session", "-d", "-s", name, "-x", "100", "-y", "30", command], capture_output=True, text=True
        )
        if started.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"tmux would not start a session: {started.stderr.strip()}")


def measure_cold_start(runs: int, threads: int) -> dict:
    times: list[float] = []
    cpu: list[float] = []
    for _ in range(runs):
        home = Path(tempfile.mkdtemp(prefix="cold-", dir=SCRATCH))
        (home / "config").mkdir()
        (home / "config" / "load.json").write_text(json.dumps({"threads": threads}))
        name = f"llamadesk-bench-{uuid.uuid4().hex[:8]}"
        start = time.perf_counter()
        new_tmux_session(name, f"exec env LLAMADESK_HOME={home} {LLAMADESK}")
        try:
            deadline = start + 30
            while time.perf_counter() < deadline:
                screen = subprocess.run(
                    [*TMUX, "capture-pane", "-p", "-t", name], capture_output=True, text=True
                ).stdout
                if "Ask anything" in screen:
                    times.append(time.perf_counter() - start)
                    pid = int(
                        subprocess.run(
                            [*TMUX, "display", "-p", "-t", name, "#{pane_pid}"], capture_output=True, text=True
                        ).stdout
                    )
                    used = psutil.Process(pid).cpu_times()
                    cpu.append(used.user + used.system)  # what the start cost, whatever the machine's load
                    break
                time.sleep(0.005)
            else:
                raise TimeoutError("the app never showed its prompt box")
        finally:
            subprocess.run([*TMUX, "kill-session", "-t", name], capture_output=True)
    return {
        "runs": runs,
        "median_s": statistics.median(times),
        "max_s": max(times),
        "min_s": min(times),
        "cpu_s": statistics.median(cpu),
    }


# -- 4. memory over a long conversation ------------------------------------------------------


class WordyEngine:
    """The Engine's interface with an instant, 60-word reply: 200 turns take seconds, not hours."""

    backend = "fake"
    n_ctx = 512

    def __init__(self) -> None:
        self._stop = threading.Event()

    def chat_prompt_tokens(self, messages):
        return [0] * sum(len(m["content"].split()) + 4 for m in messages)

    def stream_chat(self, messages, sampling):
        self._stop.clear()
        for i in range(60):
            if self._stop.is_set():
                break
            yield TextPiece(f"word{i} ")
        yield GenerationDone(GenerationStats(0, 0, 60, 0.0, 0.0, 0.0, 0, self.n_ctx, "end"))

    def request_stop(self):
        self._stop.set()

    def close(self):
        pass


def measure_memory(turns: int) -> dict:
    process = psutil.Process()
    samples: dict[int, int] = {}
    # The screen mounts at most MAX_SHOWN_MESSAGES (60): from turn 30 on it is full, so growth is
    # measured from turn 50; the points between show whether it is flat or creeping.
    checkpoints = sorted({50, turns // 2, 3 * turns // 4, turns})
    shown = 0
    forgotten = 0

    async def run() -> None:
        nonlocal shown, forgotten
        config = Config(max_tokens=64)
        app = LlamadeskApp(
            store=Store(Path(tempfile.mkdtemp(dir=SCRATCH)) / "bench.sqlite3"),
            config=config,
            engine_loader=lambda spec, settings: WordyEngine(),
            save_settings=False,
        )
        async with app.run_test(size=(120, 40)) as pilot:
            screen = app.screen
            await until(lambda: screen.facts.backend is not None)
            for turn in range(1, turns + 1):
                screen.send(f"question {turn}: tell me more about the dragon and its kitchen")
                await until(lambda: screen.reply is None, poll=0.001)
                await pilot.pause()
                if turn in checkpoints:
                    gc.collect()
                    await pilot.pause(0.2)
                    samples[turn] = process.memory_info().rss
            shown = len(screen.query("MessageView"))
            forgotten = screen.memory_start

    asyncio.run(run())
    return {
        "turns": turns,
        "rss_mib": {turn: round(rss / 2**20, 1) for turn, rss in samples.items()},
        "growth_pct": 100 * (samples[turns] - samples[50]) / samples[50],
        "messages_mounted": shown,
        "memory_start": forgotten,
    }


# -- report ---------------------------------------------------------------------------------


def write_results(section: str) -> None:
    path = REPO / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find("## tui\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1 :] if end != -1 else "")
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (default 1: shared CPUs)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--only", choices=("throughput", "latency", "cold", "memory"), help="run one part (no report)")
    args = parser.parse_args()
    if args.only:
        parts = {
            "throughput": lambda: measure_throughput(args.threads, args.reps),
            "latency": lambda: measure_input_latency(args.threads, args.keys),
            "cold": lambda: measure_cold_start(5, args.threads),
            "memory": lambda: measure_memory(args.turns),
        }
        print(args.only, parts[args.only]())
        return

    throughput = measure_throughput(args.threads, args.reps)
    print("throughput", throughput, flush=True)
    latency = measure_input_latency(args.threads, args.keys)
    print("latency", latency, flush=True)
    cold = measure_cold_start(5, args.threads)
    print("cold start", cold, flush=True)
    memory = measure_memory(args.turns)
    print("memory", memory, flush=True)

    machine = f"{psutil.cpu_count(logical=True)} logical CPUs, load average {os.getloadavg()[0]:.1f} at the end"
    command = (
        f".venv/bin/python bench/tui.py --threads {args.threads} --reps {args.reps} "
        f"--turns {args.turns} --keys {args.keys}"
    )
    section = f"""## tui

`{command}` ({time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}; {machine}; smollm2 Q4_1, {args.threads} thread(s))

| What | TUI | Reference | Ratio / goal |
|---|---|---|---|
| Tokens/s reaching the screen (greedy, {throughput["tokens"]} tokens, median of {args.reps} interleaved pairs) \
| {throughput["tui_tok_s"]:.1f} | engine alone {throughput["engine_tok_s"]:.1f} \
| **{throughput["ratio"]:.3f}** (goal >= 0.95; pairs: {", ".join(f"{r:.2f}" for r in throughput["ratios"])}) |
| Control: the engine in EngineHost's thread, no UI (same pairs) | {throughput["host_tok_s"]:.1f} | engine alone \
| {throughput["host_ratio"]:.3f} (pairs: {", ".join(f"{r:.2f}" for r in throughput["host_ratios"])}) |
| UI thread CPU while a reply streams (share of the reply's wall time; \
the reply redrawn {throughput["frames_per_s"]:.1f} times a second) | {100 * throughput["ui_cpu_share"]:.1f}% | | |
| Input latency while streaming ({latency["keys"]} keys, key event -> prompt box) \
| p50 {latency["p50_ms"]:.1f} ms, p99 {latency["p99_ms"]:.1f} ms, max {latency["max_ms"]:.1f} ms | | goal p99 < 50 ms |
| Cold start in tmux to the prompt box (model loads after, in its thread; {cold["runs"]} runs) \
| median {cold["median_s"]:.2f} s (min {cold["min_s"]:.2f}, max {cold["max_s"]:.2f}); \
CPU time used by then {cold["cpu_s"]:.2f} s | | goal < 1 s |
| RSS over {memory["turns"]} turns overflowing a {WordyEngine.n_ctx}-token context (fake engine), MiB at turn \
| {", ".join(f"{t}: {m}" for t, m in memory["rss_mib"].items())} | \
| **{memory["growth_pct"]:+.1f}%** from turn 50 (goal < 5%) |

The TUI figure runs the app headless (Textual's run_test: every frame is composed, nothing is
written to a terminal) and times Enter -> the final full render of the reply; the engine figure
times the same greedy reply through `Engine.stream_chat`. After {memory["turns"]} turns the screen
had {memory["messages_mounted"]} messages mounted (older ones stay in the store) and the model's memory began at
message {memory["memory_start"]}.

How to read the throughput: the control row runs the very same engine in EngineHost's thread
with nothing drawing it, so the distance between the control and the engine alone is this
machine's noise (a shared 2-core box, other work running), and the distance between the TUI and
the control is what the UI costs. The app's thread takes about \
{100 * throughput["ui_cpu_share"]:.0f}% of a core while a reply
streams (the frame pacer aims at 4% for drawing). What that costs the engine is Python's GIL more
than the CPU: each frame is ~8 ms of pure Python in Textual, and any engine code that needs the
GIL meanwhile waits. The biggest such wait was llama.cpp's abort callback (Esc stops a decode
mid-prompt): it is asked after every graph node, ~500 times per token, and was a Python function,
so the decode stalled for the whole of every frame; it is now C code (app/engine/stop_flag.py;
see "gil contention" below), which moved this ratio from 0.946 to the figure above. Also
measured: one shared Markdown parser instead of one per streamed append, and no restyle of the
reply's view. Tried without effect beyond noise: a shorter GIL switch interval, no cursor blink
in the prompt box, drawing each frame right as a token arrives.
Cold start's wall time follows the machine's load; its CPU time is the part that does not.
"""
    write_results(section)
    print(section)


if __name__ == "__main__":
    main()
