"""Benchmark: `llamadesk quantize` against llama.cpp's llama-quantize, and what each type costs.

1. Wall time of `llamadesk quantize` (the CLI, as users run it) and of llama-quantize on the same
   f16 file, type and thread count, alternating runs; the ratio is llama-quantize's time over
   ours (>= 0.95 is the goal: the quantizing is the same C code).
2. For the starter model (SmolLM2 135M, from its f16 GGUF): size, perplexity and KL divergence
   to f16 per type, by `llamadesk eval` on a permissively licensed text (Python Language
   Reference sections shipped in the standard library, PSF License).
Writes the figures and the command to bench/RESULTS.md under "## quantize".

Usage: .venv/bin/python bench/quantize.py [--type Q4_K_M] [--threads 2] [--repetitions 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from llamadesk.app.starter_models import starter_path  # noqa: E402
from llamadesk.quantize.evaluation import evaluate  # noqa: E402
from llamadesk.quantize.quantize_model import quantize_gguf  # noqa: E402
from tests.fixtures.smollm2_f16 import llama_tools_bin, smollm2_f16_gguf  # noqa: E402

TABLE_TYPES = ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K")
EVAL_CTX = 256
EVAL_CHARS = 6000
LLAMADESK = Path(sys.executable).with_name("llamadesk")


def _timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def time_quantize(f16: Path, qtype: str, threads: int, repetitions: int, work: Path) -> tuple[float, float, float]:
    """Median seconds of: the llamadesk CLI, quantize_gguf() called in-process, llama-quantize."""
    cli_cmd = [str(LLAMADESK), "quantize", str(f16), "-t", qtype, "--threads", str(threads), "--force",
               "-o", str(work / "ours.gguf")]
    ref_cmd = [str(llama_tools_bin() / "llama-quantize"), str(f16), str(work / "ref.gguf"), qtype, str(threads)]
    _timed(ref_cmd)  # warm the page cache for all
    cli, function, ref = [], [], []
    for _ in range(repetitions):
        cli.append(_timed(cli_cmd))
        start = time.perf_counter()
        quantize_gguf(f16, work / "function.gguf", qtype, threads=threads, force=True)
        function.append(time.perf_counter() - start)
        ref.append(_timed(ref_cmd))
    return statistics.median(cli), statistics.median(function), statistics.median(ref)


def quality_table(f16: Path, threads: int, work: Path) -> list[tuple[str, int, float, float | None, float | None]]:
    from pydoc_data.topics import topics

    text = work / "python-reference.txt"
    text.write_text((topics["assignment"] + "\n\n" + topics["execmodel"])[:EVAL_CHARS], encoding="utf-8")
    rows = []
    for qtype in TABLE_TYPES:
        model = f16 if qtype == "F16" else quantize_gguf(f16, work / f"{qtype}.gguf", qtype, threads=threads, force=True)
        result = evaluate(model, text, EVAL_CTX, base=None if qtype == "F16" else f16, threads=threads)
        rows.append((qtype, model.stat().st_size, result.perplexity, result.kld_mean, result.top1_agreement))
    return rows


def write_results(section: str) -> None:
    results = REPO / "bench" / "RESULTS.md"
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    start = text.find("## quantize")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + text[end + 1:] if end >= 0 else text[:start]
    results.write_text(text.rstrip() + "\n\n" + section)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--type", default="Q4_K_M")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    f16 = smollm2_f16_gguf(starter_path("smollm2"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cli, function, ref = time_quantize(f16, args.type, args.threads, args.repetitions, work)
        rows = quality_table(f16, args.threads, work)
    lines = [
        "## quantize",
        "",
        f"Command: `.venv/bin/python bench/quantize.py --type {args.type} --threads {args.threads} "
        f"--repetitions {args.repetitions}`",
        "",
        f"SmolLM2-135M-Instruct f16 GGUF -> {args.type}, {args.threads} threads, median of {args.repetitions} "
        "alternating runs (wall time). The CLI row includes Python's start-up and the CLI's imports; "
        "quantize_gguf() is the library call (its quantizer child process included):",
        "",
        "| tool | seconds | ratio (llama-quantize / this) |",
        "|---|---|---|",
        f"| llama-quantize | {ref:.2f} | 1.000 |",
        f"| llamadesk quantize_gguf() | {function:.2f} | {ref / function:.3f} |",
        f"| llamadesk quantize (CLI) | {cli:.2f} | {ref / cli:.3f} |",
        "",
        f"Quality per type: `llamadesk eval --ctx {EVAL_CTX} --base f16` on {EVAL_CHARS} characters of the Python "
        "Language Reference (pydoc_data/topics.py, PSF License):",
        "",
        "| type | size (MiB) | perplexity | mean KLD vs f16 | top-1 agreement |",
        "|---|---|---|---|---|",
    ]
    for qtype, size, ppl, kld, top1 in rows:
        kld_text = "-" if kld is None else f"{kld:.4f}"
        top_text = "-" if top1 is None else f"{100 * top1:.1f}%"
        lines.append(f"| {qtype} | {size / 2**20:.1f} | {ppl:.3f} | {kld_text} | {top_text} |")
    section = "\n".join(lines) + "\n"
    write_results(section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
