"""`eval` keeps only the scored positions' logits, a few rows of float64 at a time.

On gemma3-270m (262,144-token vocabulary) at --ctx 512 it peaked at 4.5 GB, five times
llama-perplexity's 0.85 GB: every position's logits, a copy of them, and float64 log-probabilities
of half a chunk at once. The README's 4 GB machines killed it.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from llamadesk.app.engine.scoring import TokenScorer
from tests.conftest import LLAMADESK

pytestmark = pytest.mark.slow

# Runs a command and prints its peak resident memory (KiB on Linux): a fresh process, so no
# earlier child of the test process counts.
PEAK_RSS = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
PEAK_RSS += "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"


def reference_text(path, chars: int):
    from pydoc_data.topics import topics  # Python Language Reference, PSF License (permissive)

    path.write_text("\n\n".join(topics.values())[:chars], encoding="utf-8")
    return path


def test_the_scored_rows_are_the_rows_of_every_positions_logits(smollm2_path):
    import llama_cpp

    tokens = list(range(100, 164))
    with TokenScorer.load(smollm2_path, 64, 1) as scorer:
        rows = np.array(scorer.scored_logits(tokens, slice(32, 63)))
    every = llama_cpp.Llama(
        str(smollm2_path), n_ctx=64, n_batch=64, n_threads=1, flash_attn=True, logits_all=True, verbose=False
    )
    try:
        every.eval(tokens)
        np.testing.assert_allclose(rows, every.scores[32:63], rtol=1e-3, atol=1e-3)
    finally:
        every.close()


def test_eval_on_a_large_vocabulary_stays_near_llama_perplexitys_memory(gemma_path, tmp_path):
    text = reference_text(tmp_path / "t.txt", 9000)
    command = [str(LLAMADESK), "eval", str(gemma_path), "--text", str(text), "--ctx", "512", "--threads", "1"]
    peak_kib = int(subprocess.run([sys.executable, "-c", PEAK_RSS, *command], capture_output=True, text=True).stdout)
    assert peak_kib < 1_600_000  # 1.06 GB now, with the 0.25 GB model; 4.5 GB before
