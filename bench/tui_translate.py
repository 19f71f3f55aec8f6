"""The app's translation screen with several segments in flight against one at a time.

The screen translates bench/batched.py's 40-paragraph document (Django messages) into French
with the gemma3-270m starter, driven through Textual's Pilot as a user would: text pasted, ctrl+r,
until the screen says it is done. Measured from ctrl+r, after a one-word translation has loaded
the model; `config.json`'s translate_parallel is 1 against 8, in alternating rounds.

Writes the "## tui translate" section of bench/RESULTS.md.

    .venv/bin/python bench/tui_translate.py [--threads 1] [--rounds 2] [--segments 40]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from batched import translation_document  # noqa: E402
from results_file import update_section  # noqa: E402

from llamadesk.app.chat.store import Store  # noqa: E402
from llamadesk.app.engine.types import LoadSettings  # noqa: E402
from llamadesk.app.settings.user_config import Config  # noqa: E402
from llamadesk.app.tui.app import LlamadeskApp  # noqa: E402


async def until(pilot, condition, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the translation did not finish")
        await pilot.pause(0.01)


async def translate_in_screen(text: str, parallel: int, threads: int, folder: Path) -> float:
    """Seconds from ctrl+r to the finished translation on the screen."""
    from textual.widgets import Select, TextArea

    store = Store(folder / f"store-{parallel}-{time.monotonic_ns()}.sqlite3")
    settings = LoadSettings(n_threads=threads, n_batch=512, kv_cache_type="f16", n_gpu_layers=0, flash_attn=True)
    config = Config(translate_parallel=parallel)
    app = LlamadeskApp(store=store, config=config, save_settings=False, load_defaults=settings)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("f6")
            screen = app.screen
            screen.query_one("#source-language", Select).value = "en"
            screen.query_one("#target-language", Select).value = "fr"
            source = screen.query_one("#source", TextArea)
            source.text = "Hello."  # loads the model, outside the measurement
            await pilot.press("ctrl+r")
            await until(pilot, lambda: not screen.running and screen.translation)
            source.text = text
            started = time.perf_counter()
            await pilot.press("ctrl+r")
            await until(pilot, lambda: screen.running)
            await until(pilot, lambda: not screen.running)
            seconds = time.perf_counter() - started
            if screen.translation.count("\n\n") < text.count("\n\n"):
                raise RuntimeError("the translation lost paragraphs")
            await pilot.press("ctrl+q")
    finally:
        store.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--segments", type=int, default=40)
    args = parser.parse_args()

    text, _ = translation_document(args.segments)
    times: dict[int, list[float]] = {1: [], 8: []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds):
            for parallel in (1, 8) if round_no % 2 == 0 else (8, 1):
                times[parallel].append(asyncio.run(translate_in_screen(text, parallel, args.threads, Path(tmp))))
                seconds = times[parallel][-1]
                print(f"round {round_no + 1}: translate_parallel {parallel}: {seconds:.1f} s", file=sys.stderr)
    ratios = [one / eight for one, eight in zip(times[1], times[8], strict=True)]
    lines = [
        f"The app's translation screen (Pilot), gemma3-270m, {args.threads} thread(s); bench/batched.py's "
        f"{args.segments}-paragraph document into French, from ctrl+r to the finished translation on screen "
        f"(model already loaded); {args.rounds} alternating rounds.",
        "",
        "| config.json translate_parallel | seconds (mean) | rounds |",
        "|---|---|---|",
        *(f"| {n} | {statistics.fmean(times[n]):.1f} | {', '.join(f'{t:.1f}' for t in times[n])} |" for n in (1, 8)),
        "",
        f"Speed-up of 8 segments in flight over one at a time, median of per-round ratios: "
        f"**{statistics.median(ratios):.2f}x** (rounds: {', '.join(f'{r:.2f}' for r in ratios)}). "
        'The same batched decoder as `translate --parallel` (sections "batched" and "translate split").',
        "",
        f"Command: `.venv/bin/python bench/tui_translate.py --threads {args.threads} --rounds {args.rounds} "
        f"--segments {args.segments}`",
    ]
    print("\n".join(lines))
    update_section("tui translate", "\n".join(lines))


if __name__ == "__main__":
    main()
