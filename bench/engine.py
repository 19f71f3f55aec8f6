"""llamadesk's engine against llama.cpp's own llama-bench, on the same model and threads.

Both tools measure prompt processing (pp512) and generation (tg128) the same way; the runs are
interleaved (ours, theirs, ours, ...) so that the noise of a shared machine hits both alike, and
the result is reported as a ratio. Writes the "## engine" section of bench/RESULTS.md.

The chat rows time `llamadesk chat --stats` replies. A reply's tokens come after its chat prompt,
so each one attends over that many more cache cells than tg128's, which start at position 0; the
chat rows are therefore also compared with llama-bench's tg128 at the prompt's depth (`-d`), the
same work with nothing of llamadesk's per-token path in it.

    .venv/bin/python bench/engine.py [--model smollm2] [--rounds 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import update_section  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
LLAMADESK = Path(sys.executable).with_name("llamadesk")


def llama_tools_bin() -> Path:
    out = subprocess.run(
        ["bash", str(REPO / "bench/build_llama_tools.sh"), sys.executable], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def run_ours(model: str, threads: int, reps: int) -> dict[str, list[float]]:
    # Flash attention on, as llama-bench's default (`-fa auto`) has it on the CPU: the engine rows
    # compare the same kernels. llamadesk's own CPU default (off) is measured in bench/flash_attn.py.
    out = subprocess.run(
        [str(LLAMADESK), "bench", "-m", model, "--threads", str(threads), "-r", str(reps), "--batched", "0"]
        + ["--flash-attn", "on", "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    return {row["test"]: row["samples_ts"] for row in json.loads(out.stdout)}


CHAT_PROMPT = "Count from 1 to 300, separated by commas, and nothing else."
CHAT_SAMPLING = {"greedy": ("--temperature", "0"), "default": ()}  # default: the chat command's own


def run_chat(model: str, threads: int, sampling: str, extra: tuple[str, ...] = ()) -> tuple[float, int]:
    """Generation tokens/s of one `llamadesk chat --stats` reply of up to 128 tokens (the UI's path),
    and the prompt's length in tokens. `extra`: more flags for the chat command."""
    out = subprocess.run(
        [str(LLAMADESK), "chat", "-m", model, "--threads", str(threads), "--max-tokens", "128", "--stats"]
        + ["--seed", "1", *CHAT_SAMPLING[sampling], *extra],
        input=CHAT_PROMPT + "\n",
        check=True,
        capture_output=True,
        text=True,
    )
    match = re.search(r"\[(\d+) tokens, ([\d.]+) tok/s; prompt (\d+) tokens", out.stderr)
    if match is None:
        raise RuntimeError(f"no --stats line in: {out.stderr[-500:]}")
    return float(match.group(2)), int(match.group(3))


def run_reference(
    bench_bin: Path, model_path: str, threads: int, reps: int, depth: int | None = None, flash_attn: bool | None = None
) -> dict[str, list[float]]:
    """llama-bench's pp512 and tg128; with `depth`, tg128 alone after `depth` tokens (keyed "tg128@d").

    `flash_attn` None leaves llama-bench's default (auto: on for the CPU)."""
    tests = ["-p", "0", "-n", "128", "-d", str(depth)] if depth is not None else []
    if flash_attn is not None:
        tests += ["-fa", "1" if flash_attn else "0"]
    out = subprocess.run(
        [str(bench_bin), "-m", model_path, "-t", str(threads), "-r", str(reps), "-o", "json", *tests],
        check=True,
        capture_output=True,
        text=True,
    )
    rows = json.loads(out.stdout)
    if depth is not None:
        return {"tg128@d": rows[0]["samples_ts"]}
    return {(f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"): r["samples_ts"] for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from llamadesk.app.core.machine import machine_facts
    from llamadesk.app.library.catalog import resolve_model

    threads = args.threads or machine_facts().physical_cores
    model_path = str(resolve_model(args.model))
    bench_bin = llama_tools_bin() / "llama-bench"
    ours: dict[str, list[float]] = {}
    theirs: dict[str, list[float]] = {}
    chat: dict[str, list[float]] = {name: [] for name in CHAT_SAMPLING}
    _, depth = run_chat(args.model, threads, "greedy")  # the chat prompt's length, for tg128 at its depth
    for round_no in range(args.rounds):
        for target, runner in (
            (ours, lambda: run_ours(args.model, threads, args.reps)),
            (theirs, lambda: run_reference(bench_bin, model_path, threads, args.reps)),
            (theirs, lambda: run_reference(bench_bin, model_path, threads, args.reps, depth)),
        ):
            for test, samples in runner().items():
                target.setdefault(test, []).extend(samples)
        for name in CHAT_SAMPLING:
            chat[name] += [run_chat(args.model, threads, name)[0] for _ in range(args.reps)]
        print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)

    lines = [
        f"Model `{args.model}` ({Path(model_path).name}), {threads} threads, {args.rounds} interleaved rounds "
        f"x {args.reps} repetitions each. Tokens per second (mean ± stdev); ratio = llamadesk / llama-bench.",
        "",
        "| test | llamadesk bench | llama-bench | ratio |",
        "|---|---|---|---|",
    ]
    for test in ("pp512", "tg128"):
        a, b = ours[test], theirs[test]
        ratio = statistics.fmean(a) / statistics.fmean(b)
        lines.append(
            f"| {test} | {statistics.fmean(a):.1f} ± {statistics.stdev(a):.1f} | "
            f"{statistics.fmean(b):.1f} ± {statistics.stdev(b):.1f} | {ratio:.3f} |"
        )
    tg, tg_deep = statistics.fmean(theirs["tg128"]), statistics.fmean(theirs["tg128@d"])
    for name, samples in chat.items():
        mean = statistics.fmean(samples)
        for label, reference in ((f"tg128 {tg:.1f}", tg), (f"tg128 -d {depth}: {tg_deep:.1f}", tg_deep)):
            lines.append(
                f"| chat --stats, {name} sampling | {mean:.1f} ± {statistics.stdev(samples):.1f} | "
                f"{label} | {mean / reference:.3f} |"
            )
    lines += [
        "",
        "Goal: ratio >= 0.98 for every row. The chat rows are the generation speed `llamadesk chat --stats` "
        f"prints for a reply of up to 128 tokens (prompt: {CHAT_PROMPT!r}), sampling included: greedy "
        "(--temperature 0) and the chat command's defaults (temperature 0.2, top-k 40, top-p 0.9, min-p 0.05, "
        "repeat penalty 1.1); llama-bench samples nothing. Each chat row is given twice: against tg128, and "
        f"against tg128 after the chat prompt's {depth} tokens (`llama-bench -p 0 -n 128 -d {depth}`, "
        f"{statistics.stdev(theirs['tg128@d']):.1f} stdev), where a reply's tokens sit.",
        "",
        f"Command: `.venv/bin/python bench/engine.py --model {args.model} --rounds {args.rounds} --reps {args.reps}"
        + (f" --threads {args.threads}`" if args.threads else "`"),
    ]
    update_section("engine", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
