"""How far one sequence's logits move with its batch company, the attention kernel and the cache type.

For each starter, a fixed English prompt and 8 following tokens are decoded by llama.cpp alone
and beside 3 other sequences, with flash attention off or on, an f32 or f16 KV cache, and the
weights repacked at load for the CPU's batched kernels (llama.cpp's default) or not
(app/engine/batch_numerics.py). Every run is compared with the most exact one (f32 cache, no
flash attention, alone): the largest logit difference, the mean KL divergence, and how often the
top token agrees. It explains why translate --parallel and aarch64 builds part from the
sequential x86 run at near ties (bench/RESULTS.md "batched", "pi5 emulation").

Writes the "## batch numerics" section of bench/RESULTS.md.

    .venv/bin/python bench/batch_numerics.py [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_file import update_section  # noqa: E402

PROMPT = (
    "The quick brown fox jumps over the lazy dog. Translate the following sentence into French: "
    "the weather is nice today and we will go to the beach"
)
# (flash attention, KV cache type, weights repacked at load as llama.cpp does by default)
CONFIGS = (("off", "f32", True), ("off", "f16", True), ("on", "f16", True), ("off", "f32", False), ("on", "f16", False))


def compare(reference: np.ndarray, logits: np.ndarray) -> str:
    """max |difference| / mean KL / rows with the reference's top token."""
    from llamadesk.app.engine.batch_numerics import kl_divergence

    diff = float(np.abs(logits - reference).max())
    kl = float(kl_divergence(reference, logits).mean())
    agree = int((logits.argmax(-1) == reference.argmax(-1)).sum())
    return f"{diff:.3f} / {kl:.1e} / {agree} of {len(reference)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from llamadesk.app.engine.batch_numerics import logits_alone_and_beside
    from llamadesk.app.engine.llama_engine import ggml_type_id
    from llamadesk.app.library.catalog import resolve_model

    lines = [
        f"One sequence (a {len(PROMPT.split())}-word English prompt, then 8 fixed tokens, 9 logit rows) decoded "
        f"alone and beside 3 other sequences, {args.threads} thread(s), against the f32-cache, no-flash-attention "
        "run alone. KL is the mean over rows of KL(reference || run); top-1 counts rows whose most likely "
        "token is the reference's.",
        "",
        "| model | flash attention | KV cache | weights repacked | alone: max abs diff / KL / top-1 | beside 3 others: "
        "max abs diff / KL / top-1 | beside vs alone: max abs diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("smollm2", "gemma3-270m"):
        path = resolve_model(name)
        runs = {
            (fa, kv, repack): logits_alone_and_beside(
                path, PROMPT, flash_attn=fa == "on", kv_type=ggml_type_id(kv), n_threads=args.threads, repack=repack
            )
            for fa, kv, repack in CONFIGS
        }
        reference = runs[("off", "f32", True)].alone
        for (fa, kv, repack), run in runs.items():
            between = float(np.abs(run.beside - run.alone).max())
            lines.append(
                f"| {name} | {fa} | {kv} | {'yes' if repack else 'no'} | {compare(reference, run.alone)} | "
                f"{compare(reference, run.beside)} | {between:.3f} |"
            )
        print(f"{name} done", file=sys.stderr)
    lines += [
        "",
        f"Command: `.venv/bin/python bench/batch_numerics.py --threads {args.threads}`",
    ]
    update_section("batch numerics", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
