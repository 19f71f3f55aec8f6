"""LoRA adapters: `llamadesk convert ADAPTER_DIR` against llama.cpp's convert_lora_to_gguf.py, and merging.

1. Adapter conversion, both tools one after the other (wall time and peak RSS of each process, as
   ratios; the reference needs torch and runs with this venv's python and the sdist's gguf-py):
   a. the PEFT adapter of the tests on SmolLM2-135M (r=8, five modules, made by peft);
   b. a synthetic r=64 adapter of every linear layer of the ~3 GB synthetic checkpoint (written
      here with numpy in PEFT's layout, f32 like PEFT saves it: ~240 MB).
2. `llamadesk convert SYNTHETIC --lora ADAPTER` (merge, then bf16) against the same conversion
   without the adapter: wall time and peak RSS, which must stay under 1 GB.

Writes the "## lora" section of bench/RESULTS.md.

    .venv/bin/python bench/lora.py [--skip-large] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert import LLAMADESK, measure, reference_source, smollm2_folder  # noqa: E402, I001 (bench/convert.py)
from results_file import update_section  # noqa: E402
from synthetic_checkpoint import write_synthetic_checkpoint  # noqa: E402

GOALS = "Goals: adapter conversion wall time and peak RSS <= 0.5x the reference; merge peak RSS < 1 GB on 3 GB."
MODULES = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn"}
MODULES |= {"gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def write_synthetic_adapter(folder: Path, base: Path, rank: int = 64) -> int:
    """A PEFT-layout adapter (random f32 A and B) for every linear layer of the checkpoint in `base`."""
    config = json.loads((base / "config.json").read_text())
    n_embd, n_ff = config["hidden_size"], config["intermediate_size"]
    shapes = {"q_proj": (n_embd, n_embd), "k_proj": (n_embd, n_embd), "v_proj": (n_embd, n_embd)}
    shapes |= {"o_proj": (n_embd, n_embd), "gate_proj": (n_ff, n_embd), "up_proj": (n_ff, n_embd)}
    shapes |= {"down_proj": (n_embd, n_ff)}
    header, offset, order = {}, 0, []
    for layer in range(config["num_hidden_layers"]):
        for module, (rows, columns) in shapes.items():
            prefix = f"base_model.model.model.layers.{layer}.{MODULES[module]}.{module}"
            for half, shape in (("lora_A", (rank, columns)), ("lora_B", (rows, rank))):
                size = shape[0] * shape[1] * 4
                header[f"{prefix}.{half}.weight"] = {
                    "dtype": "F32",
                    "shape": list(shape),
                    "data_offsets": [offset, offset + size],
                }
                order.append(size)
                offset += size
    rng = np.random.default_rng(1)
    block = (rng.standard_normal(1 << 20, dtype=np.float32) * 0.01).tobytes()
    encoded = json.dumps(header).encode()
    with open(folder / "adapter_model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded)
        for size in order:
            while size:
                piece = block[: min(size, len(block))]
                f.write(piece)
                size -= len(piece)
    (folder / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "r": rank,
                "lora_alpha": 2 * rank,
                "target_modules": list(shapes),
                "base_model_name_or_path": str(base),
                "bias": "none",
                "task_type": "CAUSAL_LM",
            }
        )
    )
    return offset


def compare(adapter: Path, base: Path, work: Path, ref_src: Path) -> tuple[tuple[float, int], tuple[float, int]]:
    ours = measure(
        [str(LLAMADESK), "convert", str(adapter), "--outtype", "f16", "-o", str(work / "ours.gguf"), "--force"]
    )
    theirs = measure(
        [
            sys.executable,
            str(ref_src / "convert_lora_to_gguf.py"),
            str(adapter),
            "--base",
            str(base),
            "--outtype",
            "f16",
            "--outfile",
            str(work / "theirs.gguf"),
        ],
        env={"PYTHONPATH": str(ref_src / "gguf-py")},
    )
    (work / "ours.gguf").unlink()
    (work / "theirs.gguf").unlink()
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-large", action="store_true", help="skip the ~3 GB checkpoint and its adapter")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    from tests.fixtures import lora_adapters

    mib = 1024 * 1024
    source, ref_src = smollm2_folder(), reference_source()
    work = Path(tempfile.mkdtemp(prefix="llamadesk-bench-lora-", dir=args.workdir))
    try:
        small = lora_adapters.make_adapter("smollm2", source)
        cases = [
            (
                f"SmolLM2 PEFT adapter, r=8 ({(small / 'adapter_model.safetensors').stat().st_size / mib:.1f} MiB)",
                small,
                source,
            )
        ]
        if not args.skip_large:
            large_base, large_adapter = work / "synthetic", work / "synthetic-lora"
            large_base.mkdir()
            large_adapter.mkdir()
            size = write_synthetic_checkpoint(large_base, source)
            adapter_size = write_synthetic_adapter(large_adapter, large_base)
            cases.append(
                (
                    f"synthetic r=64 adapter of all linear layers ({adapter_size / mib:.0f} MiB f32)",
                    large_adapter,
                    large_base,
                )
            )
        rows = [
            "| adapter | llamadesk wall (s) | reference wall (s) | ratio "
            "| llamadesk RSS (MiB) | reference RSS (MiB) | ratio |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, adapter, base in cases:
            ours, theirs = compare(adapter, base, work, ref_src)
            rows.append(
                f"| {label} | {ours[0]:.2f} | {theirs[0]:.2f} | **{ours[0] / theirs[0]:.2f}x** | {ours[1] / mib:.0f} | "
                f"{theirs[1] / mib:.0f} | **{ours[1] / theirs[1]:.2f}x** |"
            )
            print(rows[-1])
        body = [
            "Adapter to GGUF (f16), llamadesk vs convert_lora_to_gguf.py, one run each, on this shared 2-core machine.",
            "",
            *rows,
        ]
        if not args.skip_large:
            merge_rows = ["| run | wall (s) | peak RSS (MiB) |", "|---|---|---|"]
            for label, extra in (
                ("convert (no adapter)", []),
                ("convert --lora (merged)", ["--lora", str(large_adapter)]),
            ):
                wall, rss = measure(
                    [str(LLAMADESK), "convert", str(large_base), *extra, "-o", str(work / "m.gguf"), "--force"]
                )
                (work / "m.gguf").unlink()
                merge_rows.append(f"| {label} | {wall:.1f} | **{rss / mib:.0f}** |")
                print(merge_rows[-1])
            body += [
                "",
                f"Merging that adapter into the synthetic bf16 checkpoint ({size / 1e9:.2f} GB), output bf16:",
                "",
                *merge_rows,
            ]
        load = f"Load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall times vary with it)."
        body += [
            "",
            load,
            "",
            GOALS,
            "",
            "Command: `.venv/bin/python bench/lora.py" + (" --skip-large" if args.skip_large else "") + "`",
        ]
        update_section("lora", "\n".join(body))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
