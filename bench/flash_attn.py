"""Flash attention on or off on the CPU: llama.cpp's own llama-bench, both ways, at the depths a conversation reaches.

llama.cpp turns flash attention on by default (llama-bench's `-fa auto` too). On a GPU its fused
kernel is the fast path. On the CPU, generating one token runs that kernel cell by cell over the
whole cache, where the plain path multiplies the cache as two matrices; the further into a
conversation, the more that costs. This measures it where the fitted settings decide it
(app/engine/fitted_settings.py): prompt processing (pp) and generation (tg) with `-fa 0` and
`-fa 1`, each after `-d` tokens already in the cache, for both starters, in rounds whose order
alternates, reported as the median of per-round ratios (off / on; above 1 means off is faster).

Writes the "## flash attention" section of bench/RESULTS.md.

    .venv/bin/python bench/flash_attn.py [--threads 2] [--rounds 3] [--depths 0,1024,3000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine import llama_tools_bin  # noqa: E402
from results_file import update_section  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
N_PROMPT, N_GEN = 256, 32
MODELS = ("smollm2", "gemma3-270m")


def llama_bench(binary: Path, model: Path, threads: int, depth: int, flash_attn: bool) -> dict[str, float]:
    """llama-bench's pp and tg tokens/s after `depth` tokens, one repetition."""
    out = subprocess.run(
        [str(binary), "-m", str(model), "-t", str(threads), "-r", "1", "-o", "json"]
        + ["-p", str(N_PROMPT), "-n", str(N_GEN), "-d", str(depth), "-fa", "1" if flash_attn else "0"],
        check=True,
        capture_output=True,
        text=True,
    )
    rows = json.loads(out.stdout)
    return {("pp" if row["n_prompt"] else "tg"): row["avg_ts"] for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--depths", default="0,1024,3000")
    args = parser.parse_args()
    depths = [int(d) for d in args.depths.split(",")]

    sys.path.insert(0, str(REPO))
    from llamadesk.app.library.catalog import resolve_model

    binary = llama_tools_bin() / "llama-bench"
    started = time.time()
    lines = [
        f"llama.cpp's llama-bench, {args.threads} thread(s), pp{N_PROMPT} and tg{N_GEN} after `-d` tokens in the "
        f"cache, flash attention off (`-fa 0`) and on (`-fa 1`), {args.rounds} rounds (the order of the two "
        "alternates). Ratio = off / on, the median of per-round ratios; above 1 means off is faster.",
        "",
        "| model | depth | pp off / on (tok/s, medians) | pp ratio | tg off / on (tok/s, medians) | tg ratio |",
        "|---|---:|---|---:|---|---:|",
    ]
    for name in MODELS:
        model = resolve_model(name)
        for depth in depths:
            off: list[dict[str, float]] = []
            on: list[dict[str, float]] = []
            for round_no in range(args.rounds):
                order = (False, True) if round_no % 2 == 0 else (True, False)
                for flash_attn in order:
                    (on if flash_attn else off).append(llama_bench(binary, model, args.threads, depth, flash_attn))
            cells = []
            for test in ("pp", "tg"):
                ratios = [a[test] / b[test] for a, b in zip(off, on, strict=True)]
                cells.append(
                    f"{statistics.median(a[test] for a in off):.1f} / {statistics.median(b[test] for b in on):.1f} "
                    f"| {statistics.median(ratios):.2f}"
                )
            lines.append(f"| {name} | {depth} | {' | '.join(cells)} |")
            print(lines[-1], file=sys.stderr)
    lines += [
        "",
        f"{(time.time() - started) / 60:.0f} minutes. Command: `.venv/bin/python bench/flash_attn.py "
        f"--threads {args.threads} --rounds {args.rounds} --depths {args.depths}`",
    ]
    update_section("flash attention", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
