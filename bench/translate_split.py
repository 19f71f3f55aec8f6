"""Where `translate --parallel` spends its time, and the speed-up batching can give this document.

bench/batched.py compares `translate --parallel 8` with `--parallel 1` by wall time. This script
runs the same two translations (the same 40-paragraph document) with every llama_decode call
timed, in a child process each, and splits each run into:

- prompt decoding: steps that read prompt tokens (in --parallel 1, every step of more than one
  token, since translation does not use prompt lookup; in --parallel 8 the prompt tokens ride in
  the same steps as other sequences' generation);
- generation: one token per step in --parallel 1;
- everything outside llama_decode (model load, Python, detection, writing).

If batching sped up only the generation part, by llama-batched-bench's own 8-sequence gain G,
--parallel 8 would be
  wall(1) / (wall(1) - generation(1) + generation(1) / G)
times faster on this document (Amdahl's law); that estimate is printed beside the measured
speed-up. A measured speed-up above it means the prompts gained too: in --parallel 8 their tokens
ride in the steps that generate for the other sequences, which costs less per token than reading
a short prompt on its own.

Writes the "## translate split" section of bench/RESULTS.md.

    .venv/bin/python bench/translate_split.py [--model gemma3-270m] [--threads 1,2] [--segments 40]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batched import run_reference, translation_document  # noqa: E402
from engine import llama_tools_bin  # noqa: E402
from results_file import update_section  # noqa: E402

# The child: llama_decode timed (both names llama-cpp-python exports it under), then the CLI.
CHILD = """
import json, sys, time
import llama_cpp, llama_cpp.llama_cpp as bindings
calls = []
decode = bindings.llama_decode
def timed(context, batch):
    started = time.perf_counter()
    status = decode(context, batch)
    calls.append((batch.n_tokens, time.perf_counter() - started))
    return status
bindings.llama_decode = llama_cpp.llama_decode = timed
from llamadesk.app.cli import main
started = time.perf_counter()
status = main(sys.argv[2:])
wall = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    json.dump({"status": status, "wall": wall, "calls": calls}, out)
"""


def timed_translate(document: Path, model: str, threads: int, parallel: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "calls.json"
        args = [
            "translate", "--to", "fr", "--from", "en", str(document), "-o", str(Path(tmp) / "out.md"),
            "-m", model, "--threads", str(threads), "--batch", "512", "--kv-type", "f16", "--gpu-layers", "0",
            "--flash-attn", "on", "--parallel", str(parallel),
        ]  # fmt: skip
        subprocess.run([sys.executable, "-c", CHILD, str(report), *args], check=True, capture_output=True)
        run = json.loads(report.read_text())
    if run["status"] != 0:
        raise SystemExit(f"translate --parallel {parallel} exited {run['status']}")
    calls = run["calls"]
    single = [seconds for n, seconds in calls if n == 1]
    return {
        "wall": run["wall"],
        "decode": sum(seconds for _, seconds in calls),
        "steps": len(calls),
        "tokens": sum(n for n, _ in calls),
        "single_steps": len(single),
        "single_seconds": sum(single),
    }


def split_at(model: str, threads: int, document: Path, segments: int) -> list[str]:
    """The section's lines for one thread count: both runs timed, and llama-batched-bench's gain."""
    from llamadesk.app.library.catalog import resolve_model

    gains = run_reference(llama_tools_bin() / "llama-batched-bench", resolve_model(model), threads)
    gain = gains[8] / gains[1]
    one = timed_translate(document, model, threads, 1)
    eight = timed_translate(document, model, threads, 8)

    generation = one["single_seconds"]
    prompt = one["decode"] - generation
    estimate = one["wall"] / (one["wall"] - generation + generation / gain)
    rows = [
        ("wall time, s", f"{one['wall']:.1f}", f"{eight['wall']:.1f}"),
        ("inside llama_decode, s", f"{one['decode']:.1f}", f"{eight['decode']:.1f}"),
        ("outside llama_decode, s", f"{one['wall'] - one['decode']:.1f}", f"{eight['wall'] - eight['decode']:.1f}"),
        ("llama_decode calls", str(one["steps"]), str(eight["steps"])),
        ("tokens decoded", str(one["tokens"]), str(eight["tokens"])),
        (
            "of which one-token steps (generation in --parallel 1)",
            f"{one['single_steps']} ({generation:.1f} s)",
            f"{eight['single_steps']} ({eight['single_seconds']:.1f} s)",
        ),
    ]
    return [
        f"### {threads} thread(s)",
        "",
        "| | --parallel 1 | --parallel 8 |",
        "|---|---|---|",
        *(f"| {name} | {a} | {b} |" for name, a, b in rows),
        "",
        f"In --parallel 1, reading prompts took {prompt:.1f} s ({one['tokens'] - one['single_steps']} tokens in "
        f"{one['steps'] - one['single_steps']} steps) and generating {generation:.1f} s "
        f"({one['single_steps']} tokens); {one['wall'] - one['decode']:.1f} s were outside llama_decode.",
        f"llama-batched-bench's own gain at 8 sequences in this run: {gain:.2f}x "
        f"({gains[1]:.1f} -> {gains[8]:.1f} tokens/s).",
        f"Had batching sped up only the generation, by that much, --parallel 8 would be {estimate:.2f}x faster "
        f"(Amdahl's law); measured: **{one['wall'] / eight['wall']:.2f}x**, against llama-batched-bench's "
        f"**{gain:.2f}x**. "
        + (
            "The prompts gained too: in --parallel 8 their tokens ride in the steps that generate for the "
            "other sequences."
            if one["wall"] / eight["wall"] > estimate
            else "The prompts and the work outside llama_decode did not gain."
        ),
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument(
        "--threads", default="1,2", help="comma-separated thread counts, each measured on its own (default 1,2)"
    )
    parser.add_argument("--segments", type=int, default=40)
    args = parser.parse_args()
    thread_counts = [int(n) for n in args.threads.split(",")]

    text, _ = translation_document(args.segments)
    lines = [
        f"Model `{args.model}`, flash attention, f16 KV cache, batch 512; "
        f"`llamadesk translate --to fr` of bench/batched.py's {args.segments}-paragraph document, "
        "every llama_decode call timed (one child process per run), at each thread count.",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        document = Path(tmp) / "document.md"
        document.write_text(text)
        for threads in thread_counts:
            lines += split_at(args.model, threads, document, args.segments)
    lines.append(
        f"Command: `.venv/bin/python bench/translate_split.py --model {args.model} --threads {args.threads} "
        f"--segments {args.segments}`"
    )
    print("\n".join(lines))
    update_section("translate split", "\n".join(lines))


if __name__ == "__main__":
    main()
