"""What one streamed token costs the app's translation pane, as the document grows.

The translation screen shows the finished segments a line each and the segment on show as it
streams. Until 2026-12-02 it replaced the pane's whole text on every token (ReviewTextArea.show:
Textual re-splits and re-wraps every line), so a token's cost grew with the document; now it
appends the token at the end (ReviewTextArea.append), and a finished segment replaces only its
own line (replace_from_line). This runs both ways on the real widget, in one process, for panes
of 40, 200 and 1,000 finished lines: milliseconds per token of the update itself (rendering is
left out: the screen redraws at most 60 times a second, whatever the number of updates), and the ratio.

Writes the "## translation pane" section of bench/RESULTS.md.

    .venv/bin/python bench/translation_pane.py [--tokens 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from results_file import update_section  # noqa: E402
from textual.app import App, ComposeResult  # noqa: E402

from llamadesk.app.tui.widgets.review_text_area import ReviewTextArea  # noqa: E402

LINE = "Voici la phrase traduite numéro {}, assez longue pour tenir une ligne de l'écran."


class PaneApp(App):
    def compose(self) -> ComposeResult:
        yield ReviewTextArea(soft_wrap=True, read_only=True)


async def per_token(lines: int, tokens: int, rounds: int) -> tuple[float, float]:
    """Median ms per token: the whole text replaced, against the token appended."""
    whole, appended = [], []
    async with PaneApp().run_test(size=(120, 40)) as pilot:
        pane = pilot.app.query_one(ReviewTextArea)
        finished = "\n".join(LINE.format(i) for i in range(lines))
        for _ in range(rounds):
            text = finished + "\nLe segment"
            pane.show(text)
            await pilot.pause()
            started = time.perf_counter()
            for _ in range(tokens):
                text += " mot"
                pane.show(text)
            whole.append((time.perf_counter() - started) / tokens * 1000)
            pane.show(finished + "\nLe segment")
            await pilot.pause()
            started = time.perf_counter()
            for _ in range(tokens):
                pane.append(" mot")
            appended.append((time.perf_counter() - started) / tokens * 1000)
            assert pane.text == text, "appending gave another text than replacing it whole"
    return statistics.median(whole), statistics.median(appended)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for lines in (40, 200, 1000):
        whole, appended = asyncio.run(per_token(lines, args.tokens, args.rounds))
        rows.append(f"| {lines} | {whole:.2f} | {appended:.2f} | {whole / appended:.1f}x |")
        print(rows[-1], file=sys.stderr)
    lines = [
        f"ReviewTextArea (the translation screen's output pane), 120x40, soft wrap; {args.tokens} tokens "
        f"streamed onto a pane of N finished lines; median of {args.rounds} rounds; milliseconds per token of the "
        "update (drawing excluded: Textual's screen redraws at most 60 times a second, however many updates come).",
        "",
        "| finished lines | whole text replaced (before), ms | token appended (now), ms | ratio |",
        "|---|---|---|---|",
        *rows,
        "",
        "The update runs on the app's thread and holds the GIL, which the decoder's thread needs between "
        "its steps; on 1 thread gemma3-270m takes about 40 ms a token, so replacing the whole text of a "
        "1,000-line translation cost about as much again on the other core.",
        "",
        f"Command: `.venv/bin/python bench/translation_pane.py --tokens {args.tokens} --rounds {args.rounds}`",
    ]
    print("\n".join(lines))
    update_section("translation pane", "\n".join(lines))


if __name__ == "__main__":
    main()
