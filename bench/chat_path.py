"""The chat path's generation speed against llama-bench, in tight pairs, for a ratio this noisy machine can resolve.

bench/engine.py times `llamadesk chat --stats` and llama-bench in blocks of several runs each.
On this shared 2-core machine a single 128-token run moves by about 10% from one run to the
next, and the drift is fast: blocks half a minute apart do not see the same machine, so its chat
rows wander between 0.90 and 1.04 of llama-bench from one invocation to the next. A goal of 0.98
cannot be judged that way.

Here each pair is one `llamadesk chat --stats` reply and three llama-bench repetitions (the same
work both ways, and tg128 from position 0), run back to back (a few seconds apart), in each of the
24 orders in turn, so that none of them always runs on the warmer machine. The
figure is the median of the per-pair ratios, with a bootstrap 95% interval of that median.

The reference is llama-bench's tg128 after the chat prompt's tokens (`-d`): a chat reply's 128
tokens sit after its prompt, so that is the same decoding work with nothing of llamadesk in it,
both with llama-bench's defaults (flash attention on) and with flash attention off, which is what
llamadesk chooses on the CPU (app/engine/fitted_settings.py; `--flash-attn on` pins the chat
command to llama-bench's kernels). tg128 from position 0 (the issue's own yardstick) is in every
pair too and reported beside it.

Writes the "## chat path" section of bench/RESULTS.md.

    .venv/bin/python bench/chat_path.py [--model smollm2] [--pairs 40] [--threads 1] [--sampling greedy]
        [--flash-attn on|off] [--ctx N]
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine import CHAT_PROMPT, CHAT_SAMPLING, llama_tools_bin, run_chat, run_reference  # noqa: E402
from results_file import update_section  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
# The four runs of a pair go in every order in turn, so that none always runs first or last.
ORDERS = list(itertools.permutations(("chat", "deep", "deep_off", "flat")))


def bootstrap_median_interval(ratios: list[float], draws: int = 2000, seed: int = 1) -> tuple[float, float]:
    """A 95% interval of the median of `ratios`, by resampling them with replacement."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(draws))
    return medians[int(0.025 * draws)], medians[int(0.975 * draws) - 1]


def paired_ratios(chat: list[float], reference: list[float]) -> list[float]:
    return [c / r for c, r in zip(chat, reference, strict=True)]


def summary_row(label: str, ratios: list[float]) -> str:
    low, high = bootstrap_median_interval(ratios)
    return f"| {label} | {statistics.median(ratios):.3f} | {low:.3f} - {high:.3f} | {statistics.fmean(ratios):.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sampling", choices=sorted(CHAT_SAMPLING), default="greedy")
    parser.add_argument(
        "--flash-attn", choices=("on", "off"), help="pin the chat command's flash attention (default: its own choice)"
    )
    parser.add_argument(
        "--ctx",
        type=int,
        help="pin the chat command's context (default: its own choice, the model's 8,192 tokens for smollm2); "
        "llama-bench sizes its context to the test (prompt + depth + generated tokens)",
    )
    args = parser.parse_args()
    if args.pairs < 2:
        parser.error("--pairs must be at least 2")

    sys.path.insert(0, str(REPO))
    from llamadesk.app.library.catalog import resolve_model

    model_path = str(resolve_model(args.model))
    bench_bin = llama_tools_bin() / "llama-bench"
    started = time.time()
    chat_flags = ("--flash-attn", args.flash_attn) if args.flash_attn else ()
    chat_flags += ("--ctx", str(args.ctx)) if args.ctx else ()
    _, depth = run_chat(args.model, args.threads, args.sampling, chat_flags)  # warm-up, and the prompt's length
    chat: list[float] = []
    deep: list[float] = []  # llama-bench tg128 after `depth` tokens, its defaults (flash attention on)
    deep_off: list[float] = []  # the same with flash attention off, as llamadesk chooses on the CPU
    flat: list[float] = []  # llama-bench tg128 from position 0
    for pair in range(args.pairs):
        steps = {
            "chat": lambda: chat.append(run_chat(args.model, args.threads, args.sampling, chat_flags)[0]),
            "deep": lambda: deep.append(run_reference(bench_bin, model_path, args.threads, 1, depth)["tg128@d"][0]),
            "deep_off": lambda: deep_off.append(
                run_reference(bench_bin, model_path, args.threads, 1, depth, flash_attn=False)["tg128@d"][0]
            ),
            "flat": lambda: flat.append(run_reference(bench_bin, model_path, args.threads, 1, 0)["tg128@d"][0]),
        }
        for name in ORDERS[pair % len(ORDERS)]:
            steps[name]()
        print(
            f"pair {pair + 1}/{args.pairs}: chat {chat[-1]:.1f}, tg128 -d {depth} {deep[-1]:.1f}, "
            f"-fa 0 {deep_off[-1]:.1f}, tg128 {flat[-1]:.1f}",
            file=sys.stderr,
        )
    minutes = (time.time() - started) / 60
    lines = [
        f"Model `{args.model}` ({Path(model_path).name}), {args.threads} thread(s), {args.pairs} pairs, "
        f"{args.sampling} sampling; `llamadesk chat --stats` replies of up to 128 tokens to {CHAT_PROMPT!r} "
        f"(a {depth}-token chat prompt), each with llama-bench's tg128 at the prompt's depth (with its "
        "defaults and with -fa 0) and from position 0, one repetition each, run back to back in each order "
        "in turn. "
        "Ratio = the reply's generation tokens/s / llama-bench's.",
        "",
        "| ratio | median of pairs | 95% interval of the median | mean |",
        "|---|---|---|---|",
        summary_row(
            f"chat --stats / llama-bench tg128 -d {depth} (the same work; llama-bench's defaults: flash attention on)",
            paired_ratios(chat, deep),
        ),
        summary_row(
            f"chat --stats / llama-bench tg128 -d {depth} -fa 0 (the same work, flash attention off)",
            paired_ratios(chat, deep_off),
        ),
        summary_row("chat --stats / llama-bench tg128 (from position 0, its defaults)", paired_ratios(chat, flat)),
        summary_row(f"llama-bench tg128 -d {depth} / tg128 (the reply's depth alone)", paired_ratios(deep, flat)),
        "",
        f"Medians of the runs (tokens/s): chat {statistics.median(chat):.1f}, tg128 -d {depth} "
        f"{statistics.median(deep):.1f}, with -fa 0 {statistics.median(deep_off):.1f}, tg128 "
        f"{statistics.median(flat):.1f}; single chat runs "
        f"{min(chat):.1f}-{max(chat):.1f}. Goal (issue #18): >= 0.98. {minutes:.0f} minutes.",
        "",
        f"Command: `.venv/bin/python bench/chat_path.py --model {args.model} --pairs {args.pairs} "
        f"--threads {args.threads} --sampling {args.sampling}"
        + (f" --flash-attn {args.flash_attn}" if args.flash_attn else "")
        + (f" --ctx {args.ctx}`" if args.ctx else "`"),
    ]
    update_section("chat path", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
