"""`llamadesk convert` against llama.cpp's convert_hf_to_gguf.py, per family, plus peak memory on ~3 GB.

1. One row per family, each converted to f16 by both tools one after the other: wall time and
   peak RSS of each process, as ratios. Llama is the real SmolLM2-135M-Instruct HF folder
   (tests/fixtures/smollm2_checkpoint.py, f32). Qwen2.5, Qwen3, Gemma 3, Gemma 2, Phi-3 and
   Phi-4-mini are bf16 checkpoints at a real model's shapes (the wide ones with fewer layers;
   bench/synthetic_checkpoint.py) on the family's tiny test tokenizer. The reference needs torch; it
   runs with this venv's python and the sdist's own gguf-py, told the pre-tokenizer's name (it
   recognises only released tokenizers, by hash; tests/fixtures/reference_converter.py).
2. A synthetic ~3 GB bf16 checkpoint (Llama shapes, no tensor over 256 MB, written here with numpy
   in the safetensors format, deleted afterwards) converted by llamadesk with --outtype auto
   (bf16) and q8_0: peak RSS, which must stay under 1 GB since only one tensor is held at a time.

Writes the "## convert" section of bench/RESULTS.md, with the load average (the wall times on a
shared machine depend on it).

    nice .venv/bin/python bench/convert.py [--skip-large] [--families llama,qwen2,...] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import update_section  # noqa: E402
from synthetic_checkpoint import (  # noqa: E402
    FAMILY_SHAPE_NAMES,
    FAMILY_SHAPES,
    write_family_checkpoint,
    write_synthetic_checkpoint,
)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
LLAMADESK = Path(sys.executable).with_name("llamadesk")
GOALS = "Goals: wall time <= 0.5x and peak RSS <= 0.5x the reference; peak RSS < 1 GB on the 3 GB checkpoint."

# Runs a command and prints its wall time and peak RSS (KiB): the wrapper has exactly one child,
# so RUSAGE_CHILDREN's ru_maxrss is that child's peak.
MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter(); rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "wall = time.perf_counter() - t\n"
    "sys.stderr.write(rc.stderr.decode()[-2000:] if rc.returncode else '')\n"
    "print(rc.returncode, wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def measure(command: list[str], env: dict | None = None) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of one run of `command`."""
    import os

    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    code, wall, rss_kib = out.stdout.split()
    if code != "0":
        raise SystemExit(f"{command[:3]} failed ({code}): {out.stderr}")
    return float(wall), int(rss_kib) * 1024


def reference_source() -> Path:
    tools = (
        subprocess.run(
            ["bash", str(REPO / "bench/build_llama_tools.sh"), sys.executable],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    return Path(tools).parent.parent / "src"


def smollm2_folder() -> Path:
    from llamadesk.app.library.starters import starter_path
    from tests.fixtures.smollm2_checkpoint import smollm2_hf_checkpoint

    return smollm2_hf_checkpoint(starter_path("smollm2"))


# family -> the pre-tokenizer name the reference converter is told for the test tokenizer ("" for
# SentencePiece, which it reads without a name).
REFERENCE_PRE = {"qwen2": "qwen2", "qwen3": "qwen2", "gemma3": "", "gemma2": "", "phi3": "qwen2", "phi4-mini": "gpt-4o"}
MIB = 1024 * 1024
TABLE_HEAD = [
    "| family (shapes) | checkpoint (MiB) | llamadesk wall (s) / RSS (MiB) "
    "| convert_hf_to_gguf.py wall (s) / RSS (MiB) | ratio wall / RSS |",
    "|---|---|---|---|---|",
]


def side_by_side(
    label: str, folder: Path, work: Path, reference: Callable[[Path], list[str]], env: dict | None = None
) -> str:
    """Both tools on `folder` to f16, one after the other; the table row with their ratios.

    `reference(output)` is the reference converter's command line writing `output`.
    """
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    ours = measure([str(LLAMADESK), "convert", str(folder), "-o", str(work / "ours.gguf"), "--outtype", "f16"])
    theirs = measure(reference(work / "theirs.gguf"), env=env)
    for path in (work / "ours.gguf", work / "theirs.gguf"):
        path.unlink()
    row = (
        f"| {label} | {size / MIB:.0f} | {ours[0]:.1f} / {ours[1] / MIB:.0f} | "
        f"{theirs[0]:.1f} / {theirs[1] / MIB:.0f} | **{ours[0] / theirs[0]:.2f}x** / **{ours[1] / theirs[1]:.2f}x** |"
    )
    print(row, flush=True)
    return row


def llama_row(work: Path, ref_src: Path) -> str:
    """Llama: the real SmolLM2-135M-Instruct (f32 safetensors, rebuilt from the starter GGUF)."""
    source = smollm2_folder()

    def reference(output: Path) -> list[str]:
        script = ref_src / "convert_hf_to_gguf.py"
        return [sys.executable, str(script), str(source), "--outtype", "f16", "--outfile", str(output)]

    env = {"PYTHONPATH": str(ref_src / "gguf-py")}
    return side_by_side("llama (SmolLM2-135M-Instruct, real f32 weights)", source, work, reference, env)


def family_row(family: str, work: Path, ref_src: Path) -> str:
    """One family: a bf16 checkpoint at a real model's shapes (synthetic_checkpoint.FAMILY_SHAPES)."""
    from tests.fixtures.family_checkpoints import family_checkpoint
    from tests.fixtures.reference_converter import RUN_WITH_PRE_TOKENIZER

    folder = work / family
    folder.mkdir()
    write_family_checkpoint(folder, family_checkpoint(family), family)

    def reference(output: Path) -> list[str]:
        pre = REFERENCE_PRE[family]
        return [sys.executable, "-c", RUN_WITH_PRE_TOKENIZER, str(ref_src), str(folder), str(output), "f16", pre]

    try:
        return side_by_side(f"{family} ({FAMILY_SHAPE_NAMES[family]})", folder, work, reference, {"NO_LOCAL_GGUF": "1"})
    finally:
        shutil.rmtree(folder)


FAMILIES = ("llama", *FAMILY_SHAPES)


def large_rows(work: Path) -> list[str]:
    """llamadesk alone on the ~3 GB checkpoint: peak RSS must stay well under 1 GB."""
    large = work / "synthetic"
    large.mkdir()
    size = write_synthetic_checkpoint(large, smollm2_folder())
    rows = [
        f"Synthetic bf16 checkpoint, {size / 1e9:.2f} GB in 2 shards (largest tensor "
        f"{49152 * 2048 * 2 / MIB:.0f} MiB), llamadesk only:",
        "",
        "| --outtype | wall (s) | peak RSS (MiB) |",
        "|---|---|---|",
    ]
    for outtype in ("auto", "q8_0"):  # auto = bf16 here
        output = work / "large.gguf"
        wall, rss = measure([str(LLAMADESK), "convert", str(large), "-o", str(output), "--outtype", outtype])
        output.unlink()
        rows.append(f"| {outtype} | {wall:.1f} | **{rss / MIB:.0f}** |")
        print(rows[-1], flush=True)
    shutil.rmtree(large)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-large", action="store_true", help="skip the ~3 GB checkpoint")
    parser.add_argument(
        "--families", default=",".join(FAMILIES), help=f"comma-separated, of {', '.join(FAMILIES)} (default: all)"
    )
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    families = [f for f in args.families.split(",") if f]
    if unknown := set(families) - set(FAMILIES):
        parser.error(f"unknown families: {', '.join(sorted(unknown))}")
    ref_src = reference_source()
    work = Path(tempfile.mkdtemp(prefix="llamadesk-bench-convert-", dir=args.workdir))
    load_before = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        print("\n".join(TABLE_HEAD), flush=True)
        rows = [llama_row(work, ref_src) if f == "llama" else family_row(f, work, ref_src) for f in families]
        load_after = os.getloadavg()[0]
        body = [
            f"Started {started}; 1-minute load average {load_before:.1f} at the start, {load_after:.1f} at the end, "
            f"on {os.cpu_count()} cores shared with other work: the wall times are noisy, the RSS figures are not.",
            "",
            "Per family, one checkpoint each to f16, one run of each tool after the other (the reference with "
            "this venv's torch and the sdist's gguf-py, told the test tokenizer's pre-tokenizer name). Llama is "
            "the real SmolLM2 (f32); the others are bf16 checkpoints at a real model's shapes (random weights, "
            "the family's test tokenizer, the vocabulary padded to the real size; bench/synthetic_checkpoint.py):",
            "",
            *TABLE_HEAD,
            *rows,
        ]
        if not args.skip_large:
            body += ["", *large_rows(work)]
        command = "nice .venv/bin/python bench/convert.py" + (" --skip-large" if args.skip_large else "")
        if families != list(FAMILIES):
            command += f" --families {','.join(families)}"
        body += ["", GOALS, "", f"Command: `{command}`"]
        update_section("convert", "\n".join(body))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
