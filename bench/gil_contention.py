"""Generation speed while another Python thread holds the GIL: why the stop flag is C code.

llama.cpp calls its abort callback after every graph node (~500 times per token here). With the
callback in Python each call needs the GIL, so a busy UI thread stalls the decode; the StopFlag's
callback is C (app/engine/stop_flag.py) and never waits. A "burner" thread stands for the UI: it
holds the GIL in pure Python for --hold ms every --period ms. For each callback the script
times the same greedy reply without and with the burner, interleaved, and reports
(tokens/s with the burner) / (tokens/s without) as a ratio. Writes "## gil contention" of
bench/RESULTS.md.

    .venv/bin/python bench/gil_contention.py [--reps 5] [--hold 15] [--period 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import update_section  # noqa: E402

from llamadesk.app.engine.llama_engine import Engine  # noqa: E402
from llamadesk.app.engine.stop_flag import StopFlag  # noqa: E402
from llamadesk.app.engine.types import GenerationDone, LoadSettings, Sampling  # noqa: E402
from llamadesk.app.library.starters import starter_path  # noqa: E402

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a long story about a dragon who learns to cook."},
]
SAMPLING = Sampling(temperature=0.0, max_tokens=200)
CALLBACKS = {"Python callback (the fallback)": True, "C callback (StopFlag)": False}


class GilBurner:
    """A thread that, while `busy` is set, holds the GIL for `hold` seconds every `period`."""

    def __init__(self, hold: float, period: float) -> None:
        self.hold, self.period = hold, period
        self.busy = threading.Event()
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._quit.is_set():
            if self.busy.is_set():
                end = time.perf_counter() + self.hold
                count = 0
                while time.perf_counter() < end:  # pure Python: never lets go of the GIL by itself
                    count += 1
            time.sleep(self.period - self.hold)

    def close(self) -> None:
        self._quit.set()
        self._thread.join()


def tokens_per_second(engine: Engine) -> float:
    start = time.perf_counter()
    for event in engine.stream_chat(MESSAGES, SAMPLING):
        if isinstance(event, GenerationDone):
            return event.stats.generated_tokens / (time.perf_counter() - start)
    raise AssertionError("no GenerationDone")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--hold", type=float, default=15, help="ms the burner holds the GIL each time")
    parser.add_argument("--period", type=float, default=300, help="ms between the burner's holds")
    args = parser.parse_args()

    burner = GilBurner(args.hold / 1000, args.period / 1000)
    engine = Engine.load(starter_path("smollm2"), LoadSettings(n_ctx=2048, n_threads=1))
    # The flags under test are installed on the engine's context in turn; nothing here stops a reply.
    flags = {name: StopFlag(in_python=in_python) for name, in_python in CALLBACKS.items()}
    context = engine._llama._ctx.ctx
    ratios: dict[str, list[float]] = {name: [] for name in flags}
    quiet: dict[str, list[float]] = {name: [] for name in flags}
    tokens_per_second(engine)  # warm-up: the prompt lands in the KV cache
    for _ in range(args.reps):
        for name, flag in flags.items():
            flag.install(context)
            alone = tokens_per_second(engine)
            burner.busy.set()
            contended = tokens_per_second(engine)
            burner.busy.clear()
            quiet[name].append(alone)
            ratios[name].append(contended / alone)
    burner.close()
    engine.close()

    share = args.hold / args.period
    lines = [
        f"Command: `.venv/bin/python bench/gil_contention.py --reps {args.reps} "
        f"--hold {args.hold:g} --period {args.period:g}`",
        "",
        f"smollm2 Q4_1, 1 thread, greedy, {SAMPLING.max_tokens} tokens. Another Python thread holds the GIL "
        f"{args.hold:g} ms every {args.period:g} ms ({share:.0%} of the time), as a UI drawing frames would.",
        "",
        "| llama.cpp's abort callback | tokens/s without the burner | with / without (median) | pairs |",
        "|---|---:|---:|---|",
    ]
    for name in flags:
        lines.append(
            f"| {name} | {statistics.median(quiet[name]):.1f} | **{statistics.median(ratios[name]):.3f}** "
            f"| {', '.join(f'{r:.2f}' for r in ratios[name])} |"
        )
    lines += [
        "",
        "With the callback in Python, every graph node waits for the GIL while the other thread holds it,",
        "so the decode stalls for as long as the other thread runs; with the C callback only the short",
        "stretches of Python between llama.cpp calls can wait.",
    ]
    body = "\n".join(lines)
    update_section("gil contention", body)
    print(body)


if __name__ == "__main__":
    main()
