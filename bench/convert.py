"""`llamadesk convert` against llama.cpp's convert_hf_to_gguf.py, plus peak memory on ~3 GB.

1. The SmolLM2-135M-Instruct HF folder (tests/fixtures/smollm2_checkpoint.py) converted to f16 by
   both tools, one after the other: wall time and peak RSS of each process, as ratios. The
   reference needs torch; it runs with this venv's python and the sdist's own gguf-py.
2. Per family (Qwen2, Qwen3): a bf16 checkpoint at a real small model's shapes (Qwen2.5-0.5B,
   Qwen3-0.6B; bench/synthetic_checkpoint.py) on the tiny test checkpoint's tokenizer, to f16 by
   both tools, as ratios. The reference is told the pre-tokenizer's name (it recognises only
   released tokenizers, by hash; tests/fixtures/reference_converter.py).
3. A synthetic ~3 GB bf16 checkpoint (Llama shapes, no tensor over 256 MB, written here with numpy
   in the safetensors format, deleted afterwards) converted by llamadesk with --outtype auto
   (bf16): peak RSS, which must stay under 1 GB since only one tensor is held at a time.

Writes the "## convert" section of bench/RESULTS.md.

    .venv/bin/python bench/convert.py [--skip-large] [--skip-families] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import update_section  # noqa: E402
from synthetic_checkpoint import write_family_checkpoint, write_synthetic_checkpoint  # noqa: E402

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


def family_rows(work: Path, ref_src: Path) -> list[str]:
    """One row per family: a real small model's shapes converted to f16 by both tools."""
    from tests.fixtures.family_checkpoints import family_checkpoint
    from tests.fixtures.reference_converter import RUN_WITH_PRE_TOKENIZER

    mib = 1024 * 1024
    rows = [
        "Per family: a bf16 checkpoint at a real small model's shapes (random weights, the test tokenizer), to f16:",
        "",
        "| family (shapes) | size (MiB) | llamadesk wall (s) / RSS (MiB) | convert_hf_to_gguf.py wall (s) / RSS (MiB) "
        "| ratio wall / RSS |",
        "|---|---|---|---|---|",
    ]
    for family, shapes in (("qwen2", "Qwen2.5-0.5B"), ("qwen3", "Qwen3-0.6B")):
        folder = work / family
        folder.mkdir()
        size = write_family_checkpoint(folder, family_checkpoint(family), family)
        ours = measure([str(LLAMADESK), "convert", str(folder), "-o", str(work / "ours.gguf"), "--outtype", "f16"])
        theirs = measure(
            [
                sys.executable,
                "-c",
                RUN_WITH_PRE_TOKENIZER,
                str(ref_src),
                str(folder),
                str(work / "theirs.gguf"),
                "f16",
                "qwen2",
            ],
            env={"NO_LOCAL_GGUF": "1"},
        )
        rows.append(
            f"| {family} ({shapes}) | {size / mib:.0f} | {ours[0]:.1f} / {ours[1] / mib:.0f} | "
            f"{theirs[0]:.1f} / {theirs[1] / mib:.0f} | {ours[0] / theirs[0]:.2f}x / {ours[1] / theirs[1]:.2f}x |"
        )
        print(rows[-1])
        for path in (work / "ours.gguf", work / "theirs.gguf"):
            path.unlink()
        shutil.rmtree(folder)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-large", action="store_true", help="skip the ~3 GB checkpoint")
    parser.add_argument("--skip-families", action="store_true", help="skip the Qwen2/Qwen3 checkpoints")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    source, ref_src = smollm2_folder(), reference_source()
    work = Path(tempfile.mkdtemp(prefix="llamadesk-bench-convert-", dir=args.workdir))
    try:
        ours = measure(
            [str(LLAMADESK), "convert", str(source), "-o", str(work / "ours.gguf"), "--outtype", "f16", "--force"]
        )
        theirs = measure(
            [
                sys.executable,
                str(ref_src / "convert_hf_to_gguf.py"),
                str(source),
                "--outfile",
                str(work / "theirs.gguf"),
                "--outtype",
                "f16",
            ],
            env={"PYTHONPATH": str(ref_src / "gguf-py")},
        )
        mib = 1024 * 1024
        rows = [
            "| tool | wall (s) | peak RSS (MiB) |",
            "|---|---|---|",
            f"| llamadesk convert | {ours[0]:.2f} | {ours[1] / mib:.0f} |",
            f"| convert_hf_to_gguf.py | {theirs[0]:.2f} | {theirs[1] / mib:.0f} |",
            f"| ratio | {ours[0] / theirs[0]:.2f}x | {ours[1] / theirs[1]:.2f}x |",
        ]
        body = [
            "SmolLM2-135M-Instruct HF folder (f32 safetensors, "
            f"{sum(f.stat().st_size for f in source.glob('*.safetensors')) / mib:.0f} MiB) "
            "to f16, one run each, on this shared 2-core machine.",
            "",
            *rows,
        ]
        print("\n".join(rows))
        (work / "ours.gguf").unlink()
        (work / "theirs.gguf").unlink()
        if not args.skip_families:
            body += ["", *family_rows(work, ref_src)]
        if not args.skip_large:
            large = work / "synthetic"
            large.mkdir()
            size = write_synthetic_checkpoint(large, source)
            body += [
                "",
                f"Synthetic bf16 checkpoint, {size / 1e9:.2f} GB in 2 shards (largest tensor "
                f"{49152 * 2048 * 2 / mib:.0f} MiB), llamadesk only:",
                "",
                "| --outtype | wall (s) | peak RSS (MiB) |",
                "|---|---|---|",
            ]
            for outtype in ("auto", "q8_0"):  # auto = bf16 here
                wall, rss = measure(
                    [
                        str(LLAMADESK),
                        "convert",
                        str(large),
                        "-o",
                        str(work / "large.gguf"),
                        "--force",
                        "--outtype",
                        outtype,
                    ]
                )
                (work / "large.gguf").unlink()
                body.append(f"| {outtype} | {wall:.1f} | **{rss / mib:.0f}** |")
                print(body[-1])
        body += [
            "",
            GOALS,
            "",
            "Command: `.venv/bin/python bench/convert.py"
            + (" --skip-large" if args.skip_large else "")
            + (" --skip-families" if args.skip_families else "")
            + "`",
        ]
        update_section("convert", "\n".join(body))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
