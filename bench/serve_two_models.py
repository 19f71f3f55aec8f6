"""A chat reply while another client's document is translated on another model (`serve --parallel`).

The app translates with the gemma starter and chats with smollm2, and a server often serves both.
With one model in memory (the default), a request for the other model waits for the replies in
flight and then switches: the chat reply waits for the whole document and for smollm2 to load
again. With `--max-models 2` both models stay loaded and each decodes on its own batched decoder,
so the reply starts at once (the two share the cores).

Both servers run `--parallel 4` on the same threads; a chat client asks (a streamed reply of 32
tokens) half a second after another client's 16-paragraph translation on gemma3-270m started
(bench/serve_parallel.py's scenario, with the translation on the other model). One warm-up run
each, then interleaved rounds. Writes "## serve two models" of RESULTS.md.

    .venv/bin/python bench/serve_two_models.py [--model smollm2] [--threads 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from results_file import update_section  # noqa: E402
from serve_parallel import CLIENTS, reply_during_translation  # noqa: E402

from tests.serve_process import serving  # noqa: E402

TRANSLATION_MODEL = "gemma3-270m"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    runs: dict[str, list[dict]] = {"one model": [], "two models": []}
    flags = ("--threads", str(args.threads), "--parallel", str(CLIENTS))
    with serving(*flags) as one_model, serving(*flags, "--max-models", "2") as two_models:
        urls = {"one model": one_model.url, "two models": two_models.url}
        for url in urls.values():  # loads both models once
            reply_during_translation(url, args.model, TRANSLATION_MODEL)
        for round_no in range(args.rounds):
            for name in list(urls) if round_no % 2 == 0 else list(reversed(urls)):
                runs[name].append(reply_during_translation(urls[name], args.model, TRANSLATION_MODEL))
                print(f"round {round_no + 1}: {name} {runs[name][-1]}", file=sys.stderr)

    def mean(name: str, key: str) -> float:
        return statistics.fmean(r[key] for r in runs[name])

    lines = [
        f"Chat model `{args.model}`, translation model `{TRANSLATION_MODEL}`, {args.threads} threads, both servers "
        f"`--parallel {CLIENTS}`; a streamed chat reply of 32 tokens asked while another client's 16-paragraph "
        f"document is translated (mean of {args.rounds} runs each, after one warm-up each).",
        "",
        "| | reply's first content | reply's end | the translation |",
        "|---|---|---|---|",
        f"| one model in memory (the default): the reply waits for the document, then smollm2 loads again | "
        f"{mean('one model', 'ttfb'):.1f} s | {mean('one model', 'reply'):.1f} s | "
        f"{mean('one model', 'translation'):.1f} s |",
        f"| `--max-models 2`: both stay loaded and decode at once | {mean('two models', 'ttfb'):.1f} s | "
        f"{mean('two models', 'reply'):.1f} s | {mean('two models', 'translation'):.1f} s |",
        "",
        f"Load average during the run: {' / '.join(f'{x:.1f}' for x in psutil.getloadavg())} "
        f"on {psutil.cpu_count()} CPUs.",
        "",
        f"Command: `.venv/bin/python bench/serve_two_models.py --model {args.model} --threads {args.threads} "
        f"--rounds {args.rounds}`",
    ]
    update_section("serve two models", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
